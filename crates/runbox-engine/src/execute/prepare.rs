//! A request made ready to run: checked, its language resolved and found installed, its files decoded, its entry,
//! plan, environment, limits and compile-cache key computed, each once. The server prepares a request when it
//! admits it and hands the [`Prepared`] on; every route of the pipeline reads from it and decides nothing again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use runbox_lang::{Language, Plan};
use runbox_sandbox::{Limits, SandboxSpec};

use crate::compile_cache::CacheKey;
use crate::limits::layered;
use crate::paths::confined;
use crate::request::{ExecuteRequest, LimitOverrides};
use crate::{Engine, EngineError};

/// Files of a request, as (workspace path, bytes).
pub(super) type Files = Vec<(PathBuf, Vec<u8>)>;

/// A request ready to run (see the module comment). Made by [`Engine::prepare`], run by [`Engine::run`].
#[derive(Debug, Clone)]
pub struct Prepared {
    pub(super) req: ExecuteRequest,
    pub(super) lang: Language,
    pub(super) version: Option<String>,
    pub(super) files: Files,
    pub(super) plan: Plan,
    /// The run stage's environment: the language's, then the request's.
    pub(super) env: BTreeMap<String, String>,
    pub(super) run_limits: Limits,
    pub(super) compile: Option<CompileStep>,
    /// The request asks for nothing a warm sandbox of its language lacks (see [`Engine::warm_sandbox`]).
    pub(super) fits_warm: bool,
}

/// The compile stage of a language that compiles.
#[derive(Debug, Clone)]
pub(super) struct CompileStep {
    pub argv: Vec<String>,
    /// The language's own environment and nothing of the request's (see [`compile_env`]).
    pub env: BTreeMap<String, String>,
    pub limits: Limits,
    /// Where its artefacts are cached, when the compile cache is on.
    pub cache_key: Option<String>,
}

/// The environment of a compile stage: the language's own, and nothing of the request's. A compiler runs with the
/// request's sources only; the request's `env` is for the program. Variables such as `LD_PRELOAD`,
/// `LD_LIBRARY_PATH`, `GCONV_PATH`, `JAVA_TOOL_OPTIONS`, `GOFLAGS`, `RUSTC_WRAPPER` or `NODE_OPTIONS` would
/// otherwise run the request's code inside the compiler (or change what it builds), and the compile cache would
/// have to trust artefacts a request shaped that way. An allow-list was considered and not needed: every compile
/// command is fixed by the language's TOML file.
fn compile_env(lang: &Language) -> BTreeMap<String, String> {
    lang.env().clone()
}

impl Prepared {
    pub fn request(&self) -> &ExecuteRequest {
        &self.req
    }

    pub fn language(&self) -> &Language {
        &self.lang
    }

    /// The installed version of the language, when its runtime says.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Memory (bytes) and processes the run may use at most: those of its largest stage.
    pub fn footprint(&self) -> (u64, u64) {
        let run = (self.run_limits.memory_bytes, u64::from(self.run_limits.processes));
        match &self.compile {
            Some(c) => (
                run.0.max(c.limits.memory_bytes),
                run.1.max(u64::from(c.limits.processes)),
            ),
            None => run,
        }
    }

    /// The spec of one stage's sandbox in `workspace`.
    pub(super) fn spec(
        &self,
        engine: &Engine,
        id: String,
        workspace: &Path,
        argv: Vec<String>,
        limits: Limits,
    ) -> SandboxSpec {
        SandboxSpec {
            env: self.env.clone(),
            extra_paths: self.lang.sandbox_paths().to_vec(),
            limits,
            policy: engine.config.policy.clone(),
            ..SandboxSpec::new(id, argv, workspace)
        }
    }
}

/// The request's files, checked and decoded, and the entry point.
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

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Engine {
    /// Checks a request as far as it can be without running it (fields, language, installed runtime, files and
    /// entry) and computes everything its run needs (see [`Prepared`]). `req.tenant` must already be set.
    pub fn prepare(&self, req: ExecuteRequest) -> Result<Prepared, EngineError> {
        req.validate(&self.config.caps)?;
        let lang = self.resolve(&req.language)?.clone();
        let availability = self.availability(&lang);
        if !availability.available {
            return Err(EngineError::LanguageUnavailable {
                id: lang.id().to_string(),
                reason: availability.reason.unwrap_or_else(|| "runtime not found".into()),
            });
        }
        let version = availability.version;
        let (files, entry) = collect_files(&req, &lang)?;
        let plan = Plan {
            entry: path_string(&entry),
            files: files.iter().map(|(p, _)| path_string(p)).collect(),
            args: req.args.clone(),
        };
        let mut env = lang.env().clone();
        env.extend(req.env.clone());
        let run_limits = layered(lang.run().limits(), Some(&req.limits));
        let compile = match (lang.compile(), lang.compile_argv(&plan)) {
            (Some(stage), Some(argv)) => {
                let env = compile_env(&lang);
                // The compile stage keeps the language's limits; only the request's output cap reaches it.
                let output_only = LimitOverrides {
                    output_bytes: req.limits.output_bytes,
                    ..Default::default()
                };
                let cache_key = self.compile_cache.enabled().then(|| {
                    CacheKey {
                        tenant: &req.tenant,
                        language: lang.id(),
                        version: version.as_deref().unwrap_or(""),
                        argv: &argv,
                        env: &env,
                        files: &files,
                    }
                    .digest()
                });
                Some(CompileStep {
                    limits: layered(stage.limits(), Some(&output_only)),
                    argv,
                    env,
                    cache_key,
                })
            }
            _ => None,
        };
        let fits_warm = self.fits_warm(&req, &lang, &entry, &run_limits);
        Ok(Prepared {
            req,
            lang,
            version,
            files,
            plan,
            env,
            run_limits,
            compile,
            fits_warm,
        })
    }

    /// Whether a request may run in a warm sandbox of its language's pool: the language is pooled, the request is
    /// no judge request, and it asks for no limit other than those the pool's sandboxes were built with.
    fn fits_warm(&self, req: &ExecuteRequest, lang: &Language, entry: &Path, wanted: &Limits) -> bool {
        let Some(pool_limits) = self.pools().limits_of(lang.id()) else {
            return false;
        };
        if !req.tests.is_empty() {
            return false;
        }
        if lang.pool().runs_cold(entry) {
            return false; // e.g. Node's ES modules, which start differently
        }
        wanted.memory_bytes == pool_limits.memory_bytes
            && wanted.processes == pool_limits.processes
            && wanted.cpu_millicores == pool_limits.cpu_millicores
            && wanted.file_size_bytes == pool_limits.file_size_bytes
            && wanted.open_files == pool_limits.open_files
            && wanted.tmp_bytes == pool_limits.tmp_bytes
            && wanted.output_bytes == pool_limits.output_bytes
            && req
                .limits
                .workspace_mb
                .is_none_or(|mb| mb == self.config.pools.workspace_mb)
    }
}
