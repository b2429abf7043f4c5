//! The staged pipeline of one execution: validate, prepare the workspace, compile once, then run (once, or once
//! per judge test case: `judge.rs`), each stage in a fresh sandbox; compile and a single run share the workspace,
//! each judge test case gets a fresh one.

mod judge;
mod warm;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use runbox_lang::{Language, Plan};
use runbox_sandbox::{probe, CancelToken, Limits, OutputStream, SandboxSpec, Status, Workspace};

use crate::compile_cache::CacheKey;
use crate::paths::{confined, ARTEFACT_DIR_NAME};
use crate::request::{ExecuteRequest, LimitOverrides};
use crate::result::{ExecutionResult, ExecutionStatus, TestCaseResult};
use crate::{Engine, EngineError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Compile,
    Run,
}

/// What happens during an execution, as it happens.
#[derive(Debug)]
pub enum ExecEvent<'a> {
    StageStarted(Stage),
    Output {
        stage: Stage,
        stream: OutputStream,
        data: &'a [u8],
    },
    /// A judge test case finished.
    TestCase(&'a TestCaseResult),
}

const MIB: u64 = 1 << 20;

/// Sandbox limits of a stage: the language's stage defaults, then the request's overrides (run stage only).
pub(crate) fn stage_limits(lang_limits: runbox_lang::Limits, overrides: Option<&LimitOverrides>) -> Limits {
    let mut l = Limits::default();
    if let Some(t) = lang_limits.timeout_ms {
        l.wall_ms = t;
        l.cpu_ms = t;
    }
    if let Some(m) = lang_limits.memory_mb {
        l.memory_bytes = m * MIB;
    }
    if let Some(p) = lang_limits.processes {
        l.processes = u32::try_from(p).unwrap_or(u32::MAX);
    }
    if let Some(o) = overrides {
        if let Some(t) = o.timeout_ms {
            l.wall_ms = t;
            l.cpu_ms = o.cpu_ms.unwrap_or(t);
        }
        if let Some(c) = o.cpu_ms {
            l.cpu_ms = c;
        }
        if let Some(c) = o.cpu_millicores {
            l.cpu_millicores = c;
        }
        if let Some(m) = o.memory_mb {
            l.memory_bytes = m * MIB;
        }
        if let Some(p) = o.processes {
            l.processes = p;
        }
        if let Some(b) = o.output_bytes {
            l.output_bytes = b;
        }
        if let Some(f) = o.file_size_mb {
            l.file_size_bytes = f * MIB;
        }
        if let Some(t) = o.tmp_mb {
            l.tmp_bytes = t * MIB;
        }
        if let Some(n) = o.open_files {
            l.open_files = n;
        }
    }
    l
}

/// The environment of a compile stage: the language's own, and nothing of the request's. A compiler runs with the
/// request's sources only; the request's `env` is for the program. Variables such as `LD_PRELOAD`,
/// `LD_LIBRARY_PATH`, `GCONV_PATH`, `JAVA_TOOL_OPTIONS`, `GOFLAGS`, `RUSTC_WRAPPER` or `NODE_OPTIONS` would
/// otherwise run the request's code inside the compiler (or change what it builds), and the compile cache would
/// have to trust artefacts a request shaped that way. An allow-list was considered and not needed: every compile
/// command is fixed by the language's TOML file.
pub(crate) fn compile_env(lang: &Language) -> std::collections::BTreeMap<String, String> {
    lang.env().clone()
}

/// The request's files, checked and decoded, and the entry point.
/// Files of a request, as (workspace path, bytes).
type Files = Vec<(PathBuf, Vec<u8>)>;

fn collect_files(req: &ExecuteRequest, lang: &Language) -> Result<(Files, PathBuf), EngineError> {
    let mut files: Files = Vec::new();
    let code_path = match &req.code {
        Some(code) => {
            let path = match &req.entry {
                Some(e) => confined("entry", e)?,
                None => PathBuf::from(lang.source_file()),
            };
            files.push((path.clone(), code.clone().into_bytes()));
            Some(path)
        }
        None => None,
    };
    for (i, f) in req.files.iter().enumerate() {
        let field = format!("files[{i}]");
        let path = confined(&format!("{field}.path"), &f.path)?;
        if files.iter().any(|(p, _)| *p == path) {
            return Err(EngineError::invalid(
                format!("{field}.path"),
                format!("{} is given twice", path.display()),
            ));
        }
        files.push((path, f.bytes(&field)?));
    }
    // Parents of one file may not be another file.
    for (p, _) in &files {
        for ancestor in p.ancestors().skip(1) {
            if files.iter().any(|(q, _)| q == ancestor) {
                return Err(EngineError::invalid(
                    "files",
                    format!("{} is both a file and a directory", ancestor.display()),
                ));
            }
        }
    }
    let entry = match (&req.entry, code_path) {
        (_, Some(p)) => p,
        (Some(e), None) => {
            let e = confined("entry", e)?;
            if !files.iter().any(|(p, _)| *p == e) {
                return Err(EngineError::invalid(
                    "entry",
                    format!("{} is not one of the files", e.display()),
                ));
            }
            e
        }
        (None, None) => files[0].0.clone(),
    };
    Ok((files, entry))
}

/// The files `req.collect` asks for from the workspace the program ran in, leaving out unchanged inputs.
fn collect_produced(
    req: &ExecuteRequest,
    inputs: &Files,
    ran_in: &Workspace,
) -> Option<Vec<crate::collect::CollectedFile>> {
    if req.collect.is_empty() {
        return None;
    }
    let unchanged = |path: &str, bytes: &[u8]| inputs.iter().any(|(p, c)| p.to_str() == Some(path) && c == bytes);
    Some(crate::collect::collect(ran_in.path(), &req.collect, &unchanged))
}

/// The run stage's stdin: a streamed one when the caller gives it, else the request's bytes (none when empty).
fn request_stdin(req: &ExecuteRequest, streamed: Option<Box<dyn Read + Send>>) -> Option<Box<dyn Read + Send>> {
    streamed.or_else(|| {
        (!req.stdin.is_empty()).then(|| Box::new(std::io::Cursor::new(req.stdin.clone())) as Box<dyn Read + Send>)
    })
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Engine {
    /// Everything that can be checked about a request without running it: fields, language, files and entry.
    pub fn check(&self, req: &ExecuteRequest) -> Result<(), EngineError> {
        let (lang, _) = self.checked_language(req)?;
        collect_files(req, lang).map(|_| ())
    }

    /// The request's fields are valid and its language is known and installed.
    fn checked_language(&self, req: &ExecuteRequest) -> Result<(&Language, runbox_lang::Availability), EngineError> {
        req.validate(&self.config.caps)?;
        let lang = self.resolve(&req.language)?;
        let availability = self.availability(lang);
        if !availability.available {
            return Err(EngineError::LanguageUnavailable {
                id: lang.id().to_string(),
                reason: availability.reason.unwrap_or_else(|| "runtime not found".into()),
            });
        }
        Ok((lang, availability))
    }

    /// Runs one request to completion. `stdin`, when given, replaces `req.stdin` for the run stage (streamed
    /// input, e.g. from a WebSocket). `on_event` sees stage starts and output chunks as they happen.
    pub fn execute(
        &self,
        req: &ExecuteRequest,
        mut stdin: Option<Box<dyn Read + Send>>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
    ) -> Result<ExecutionResult, EngineError> {
        let started = Instant::now();
        let (lang, availability) = self.checked_language(req)?;
        let (files, entry) = collect_files(req, lang)?;
        if let Some(taken) = lang
            .compile()
            .is_none()
            .then(|| self.pooled_sandbox(req, lang, &entry))
            .flatten()
        {
            return self.execute_pooled(
                req,
                lang,
                availability.version.clone(),
                taken,
                &files,
                &entry,
                stdin,
                cancel,
                on_event,
                started,
            );
        }

        if let Some(result) = self.try_cached_and_warm(
            req,
            lang,
            availability.version.clone(),
            &files,
            &entry,
            &mut stdin,
            cancel,
            on_event,
            started,
        )? {
            return Ok(result);
        }

        let id = self.new_run_id();
        let owner = probe::is_root().then_some(self.config.policy.host_uid);
        let workspace_mb = req.limits.workspace_mb.unwrap_or(64);
        let ws = Workspace::create(&self.runs_dir(), &id, Some(workspace_mb * MIB), owner)?;
        for (path, content) in &files {
            ws.write_file(path, content)?;
        }
        ws.create_dir(Path::new(ARTEFACT_DIR_NAME))?;

        let plan = Plan {
            entry: path_string(&entry),
            files: files.iter().map(|(p, _)| path_string(p)).collect(),
            args: req.args.clone(),
        };
        let mut env = lang.env().clone();
        env.extend(req.env.clone());
        let spec_in = |workspace: &Path, suffix: &str, argv: Vec<String>, limits: Limits| SandboxSpec {
            env: env.clone(),
            extra_paths: lang.sandbox_paths().to_vec(),
            limits,
            policy: self.config.policy.clone(),
            ..SandboxSpec::new(format!("{id}-{suffix}"), argv, workspace)
        };
        let spec_for = |suffix: &str, argv: Vec<String>, limits: Limits| spec_in(ws.path(), suffix, argv, limits);
        let version = availability.version.clone();
        let output_override = LimitOverrides {
            output_bytes: req.limits.output_bytes,
            ..Default::default()
        };

        let mut compile_cached = false;
        let compile = match (lang.compile(), lang.compile_argv(&plan)) {
            (Some(stage), Some(argv)) => 'compile: {
                let compile_env = compile_env(lang);
                let cache_key = self.compile_cache.enabled().then(|| {
                    let version = version.as_deref().unwrap_or("");
                    CacheKey {
                        tenant: &req.tenant,
                        language: lang.id(),
                        version,
                        argv: &argv,
                        env: &compile_env,
                        files: &files,
                    }
                    .digest()
                });
                let artefacts = ws.path().join(ARTEFACT_DIR_NAME);
                if let Some(hit) = cache_key
                    .as_ref()
                    .and_then(|k| self.compile_cache.restore(k, &artefacts, owner))
                {
                    compile_cached = true;
                    break 'compile Some(hit);
                }
                on_event(ExecEvent::StageStarted(Stage::Compile));
                let mut spec = spec_for("c", argv, stage_limits(stage.limits(), Some(&output_override)));
                spec.env = compile_env;
                let outcome = self.config.jail.run_cancellable(
                    &spec,
                    None,
                    &mut |stream, data| {
                        on_event(ExecEvent::Output {
                            stage: Stage::Compile,
                            stream,
                            data,
                        })
                    },
                    cancel,
                )?;
                if outcome.status != Status::Ok {
                    let status = if outcome.status == Status::Killed && cancel.is_cancelled() {
                        ExecutionStatus::Killed
                    } else {
                        ExecutionStatus::CompileError
                    };
                    let mut result = ExecutionResult::from_stage(lang.id(), version, status, &outcome);
                    if result.message.is_none() {
                        result.message = Some(match outcome.exit_code {
                            Some(code) => format!("compilation failed: the compiler exited with code {code}"),
                            None => "compilation failed".to_string(),
                        });
                    }
                    result.compile = Some(outcome);
                    result.duration_ms = started.elapsed().as_millis() as u64;
                    return Ok(result);
                }
                if let Some(key) = cache_key {
                    self.compile_cache.store(&key, &artefacts, &outcome);
                }
                Some(outcome)
            }
            _ => None,
        };

        let run_limits = stage_limits(lang.run().limits(), Some(&req.limits));
        // The run stage of a compiled program takes a warm sandbox too when one fits; it gets the artefacts.
        let mut ran_in: Option<Workspace> = None;
        let mut result = if req.tests.is_empty() {
            let warm = compile
                .is_some()
                .then(|| self.pooled_sandbox(req, lang, &entry))
                .flatten();
            let outcome = match warm {
                Some(taken) => {
                    let (outcome, warm_ws) =
                        self.go_warm(req, lang, taken, &files, Some(&ws), &plan, stdin, cancel, on_event)?;
                    ran_in = Some(warm_ws);
                    outcome
                }
                None => {
                    on_event(ExecEvent::StageStarted(Stage::Run));
                    let spec = spec_for("r", lang.run_argv(&plan), run_limits);
                    let stdin = request_stdin(req, stdin);
                    self.config.jail.run_cancellable(
                        &spec,
                        stdin,
                        &mut |stream, data| {
                            on_event(ExecEvent::Output {
                                stage: Stage::Run,
                                stream,
                                data,
                            })
                        },
                        cancel,
                    )?
                }
            };
            let mut result = ExecutionResult::from_stage(lang.id(), version, outcome.status.into(), &outcome);
            if compile.is_some() {
                result.run = Some(outcome);
            }
            result
        } else {
            let (result, last_case) = self.run_test_cases(
                req, &id, &ws, &files, lang, &plan, version, run_limits, &spec_in, cancel, on_event,
            )?;
            ran_in = last_case;
            result
        };
        result.compile = compile;
        result.compile_cached = compile_cached;
        result.files = collect_produced(req, &files, ran_in.as_ref().unwrap_or(&ws));
        result.duration_ms = started.elapsed().as_millis() as u64;
        ws.dispose_in_background();
        if let Some(w) = ran_in {
            w.dispose_in_background();
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_overrides_beat_language_defaults() {
        let lang = runbox_lang::Limits {
            timeout_ms: Some(15_000),
            memory_mb: Some(512),
            processes: Some(64),
        };
        let o = LimitOverrides {
            timeout_ms: Some(2000),
            memory_mb: Some(128),
            ..Default::default()
        };
        let l = stage_limits(lang, Some(&o));
        assert_eq!(
            (l.wall_ms, l.cpu_ms, l.memory_bytes, l.processes),
            (2000, 2000, 128 * MIB, 64)
        );
        let l = stage_limits(lang, None);
        assert_eq!((l.wall_ms, l.memory_bytes), (15_000, 512 * MIB));
    }
}
