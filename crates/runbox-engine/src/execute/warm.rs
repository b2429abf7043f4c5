//! The warm path of an execution: a run stage served by a sandbox from the pools, for interpreted programs, for
//! compiled programs after their compile, and for cached compiled programs without any workspace of their own.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use runbox_lang::{Language, Plan};
use runbox_sandbox::{probe, CancelToken, Workspace};

use super::{collect_produced, path_string, request_stdin, stage_limits, ExecEvent, Files, Stage};
use crate::compile_cache::CacheKey;
use crate::paths::ARTEFACT_DIR_NAME;
use crate::request::ExecuteRequest;
use crate::result::ExecutionResult;
use crate::{Engine, EngineError};

impl Engine {
    /// A compiled program whose artefacts are cached runs straight in a warm sandbox: no workspace of its own and
    /// no compile. `None` when that path does not apply; `stdin` is taken only when it does.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn try_cached_and_warm(
        &self,
        req: &ExecuteRequest,
        lang: &Language,
        version: Option<String>,
        files: &Files,
        entry: &Path,
        stdin: &mut Option<Box<dyn Read + Send>>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
        started: Instant,
    ) -> Result<Option<ExecutionResult>, EngineError> {
        if lang.compile().is_none() || !req.tests.is_empty() || !self.compile_cache.enabled() {
            return Ok(None);
        }
        let plan = Plan {
            entry: path_string(entry),
            files: files.iter().map(|(p, _)| path_string(p)).collect(),
            args: req.args.clone(),
        };
        let Some(argv) = lang.compile_argv(&plan) else {
            return Ok(None);
        };
        let env = super::compile_env(lang);
        let version_str = version.as_deref().unwrap_or("");
        let key = CacheKey {
            tenant: &req.tenant,
            language: lang.id(),
            version: version_str,
            argv: &argv,
            env: &env,
            files,
        }
        .digest();
        if !self.compile_cache.contains(&key) {
            return Ok(None);
        }
        let Some(taken) = self.pooled_sandbox(req, lang, entry) else {
            return Ok(None);
        };
        let artefacts = taken.workspace.path().join(ARTEFACT_DIR_NAME);
        let Some(compiled) = self.compile_cache.restore(&key, &artefacts, self.workspace_owner()) else {
            return Ok(None); // evicted meanwhile: the warm sandbox is dropped, the usual way compiles
        };
        let (outcome, ws) = self.go_warm(req, lang, taken, files, None, &plan, stdin.take(), cancel, on_event)?;
        let mut result = ExecutionResult::from_stage(lang.id(), version, outcome.status.into(), &outcome);
        result.compile = Some(compiled);
        result.compile_cached = true;
        result.run = Some(outcome);
        result.files = collect_produced(req, files, &ws);
        result.duration_ms = started.elapsed().as_millis() as u64;
        ws.dispose_in_background();
        Ok(Some(result))
    }

    /// A warm sandbox for this request, if its language is pooled and it asks for nothing a warm sandbox lacks.
    pub(super) fn pooled_sandbox(
        &self,
        req: &ExecuteRequest,
        lang: &Language,
        entry: &Path,
    ) -> Option<crate::pools::Taken> {
        let pool_limits = self.pools().limits_of(lang.id())?;
        if !req.tests.is_empty() {
            return None;
        }
        if lang.id() == "javascript" && entry.extension().is_some_and(|e| e == "mjs") {
            return None; // ES modules start differently
        }
        let wanted = stage_limits(lang.run().limits(), Some(&req.limits));
        let same = wanted.memory_bytes == pool_limits.memory_bytes
            && wanted.processes == pool_limits.processes
            && wanted.cpu_millicores == pool_limits.cpu_millicores
            && wanted.file_size_bytes == pool_limits.file_size_bytes
            && wanted.open_files == pool_limits.open_files
            && wanted.tmp_bytes == pool_limits.tmp_bytes
            && wanted.output_bytes == pool_limits.output_bytes
            && req
                .limits
                .workspace_mb
                .is_none_or(|mb| mb == self.config.pools.workspace_mb);
        if !same {
            return None;
        }
        self.pools().take(lang.id())
    }

    /// Runs `plan` in a warm sandbox taken from a pool: `files` (and, for compiled languages, the artefacts of
    /// `compiled`) are placed in its workspace, with the argument and environment lists its prelude reads.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn go_warm(
        &self,
        req: &ExecuteRequest,
        lang: &Language,
        taken: crate::pools::Taken,
        files: &Files,
        compiled: Option<&Workspace>,
        plan: &Plan,
        stdin: Option<Box<dyn Read + Send>>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
    ) -> Result<(runbox_sandbox::Outcome, Workspace), EngineError> {
        let crate::pools::Taken { jail, workspace, .. } = taken;
        for (path, content) in files {
            workspace.write_file(path, content)?;
        }
        if let Some(compiled) = compiled {
            let artefacts = Path::new(ARTEFACT_DIR_NAME);
            crate::compile_cache::copy_tree(
                &compiled.path().join(artefacts),
                &workspace.path().join(artefacts),
                self.workspace_owner(),
            )
            .map_err(|e| EngineError::invalid("files", format!("cannot place the compiled program: {e}")))?;
        }
        // NUL-separated lists: the preludes read them without parsing JSON.
        let nul_list = |items: Vec<String>| {
            items
                .into_iter()
                .flat_map(|s| s.into_bytes().into_iter().chain([0u8]))
                .collect::<Vec<u8>>()
        };
        let args = nul_list(
            std::iter::once(plan.entry.clone())
                .chain(req.args.iter().cloned())
                .collect(),
        );
        let argv = nul_list(lang.run_argv(plan));
        let env = nul_list(req.env.iter().map(|(k, v)| format!("{k}={v}")).collect());
        for (name, content) in [("args", &args), ("argv", &argv), ("env", &env)] {
            workspace.write_file(&Path::new(ARTEFACT_DIR_NAME).join(name), content)?;
        }
        let limits = stage_limits(lang.run().limits(), Some(&req.limits));
        let stdin = request_stdin(req, stdin);
        on_event(ExecEvent::StageStarted(Stage::Run));
        let outcome = jail.go(
            limits.wall_ms,
            limits.cpu_ms,
            stdin,
            &mut |stream, data| {
                on_event(ExecEvent::Output {
                    stage: Stage::Run,
                    stream,
                    data,
                })
            },
            cancel,
        );
        self.pools().refill();
        Ok((outcome?, workspace))
    }

    fn workspace_owner(&self) -> Option<u32> {
        probe::is_root().then_some(self.config.policy.host_uid)
    }

    /// An interpreted language's whole execution in a warm sandbox.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn execute_pooled(
        &self,
        req: &ExecuteRequest,
        lang: &Language,
        version: Option<String>,
        taken: crate::pools::Taken,
        files: &Files,
        entry: &Path,
        stdin: Option<Box<dyn Read + Send>>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
        started: Instant,
    ) -> Result<ExecutionResult, EngineError> {
        let plan = Plan {
            entry: path_string(entry),
            files: files.iter().map(|(p, _)| path_string(p)).collect(),
            args: req.args.clone(),
        };
        let (outcome, ws) = self.go_warm(req, lang, taken, files, None, &plan, stdin, cancel, on_event)?;
        let mut result = ExecutionResult::from_stage(lang.id(), version, outcome.status.into(), &outcome);
        result.files = collect_produced(req, files, &ws);
        result.duration_ms = started.elapsed().as_millis() as u64;
        ws.dispose_in_background();
        Ok(result)
    }
}
