//! What a language starts besides its compile and run stages, as its file says: the worker program of its
//! stateful sessions (`[session]`) and the prelude its warm sandboxes wait in (`[pool]`), both programs of `workers/`
//! (embedded, see [`crate::workers`]), and the notebook cell magics that select it. Kept apart from `language.rs`
//! because these name host-side programs the engine starts, not the user's program.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::LangError;
use crate::language::{check_absolute, check_env_name};
use crate::spec;

/// How a language's stateful sessions run: a worker program of `workers/` (`[session]` of its file), started as
/// `argv` followed by the worker's path in the session's workspace, with `env` added to the language's.
#[derive(Debug, Clone)]
pub struct SessionWorker {
    worker: String,
    source: &'static str,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
}

impl SessionWorker {
    /// The worker's file name (`python_worker.py`).
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The worker program's text.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The interpreter and its options, before the worker's path.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Environment the worker needs besides the language's (`RUNBOX_TYPESCRIPT`).
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }
}

/// How a language's warm sandboxes wait for their request (`[pool]` of its file): `argv`, where `{prelude}` stands
/// for the text of a prelude program of `workers/`, starts ahead of time and waits for the go signal. Without a
/// `[pool]`, a small shell waits and then `exec`s the language's run command.
#[derive(Debug, Clone)]
pub struct Pool {
    prelude: String,
    source: &'static str,
    argv: Vec<String>,
    in_process: Option<Vec<String>>,
    cold_extensions: Vec<String>,
}

/// The `{prelude}` placeholder of `pool.argv`.
const PRELUDE: &str = "{prelude}";

impl Pool {
    pub(crate) fn exec() -> Pool {
        let prelude = crate::workers::EXEC_PRELUDE;
        Pool {
            prelude: prelude.to_string(),
            source: crate::workers::source(prelude).expect("the exec prelude is embedded"),
            argv: vec!["/bin/bash".into(), "-c".into(), PRELUDE.into()],
            in_process: None,
            cold_extensions: Vec::new(),
        }
    }

    /// The prelude's file name (`python_pooled.py`).
    pub fn prelude(&self) -> &str {
        &self.prelude
    }

    /// The prelude program's text.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The warm sandbox's command, the prelude's text in place of `{prelude}`.
    pub fn argv(&self) -> Vec<String> {
        self.argv
            .iter()
            .map(|a| {
                if a == PRELUDE {
                    self.source.to_string()
                } else {
                    a.clone()
                }
            })
            .collect()
    }

    /// When a pool's zygote runs the prelude in its own interpreter (no `exec` in the forked child): the
    /// interpreter and options the zygote starts with, before its own path and the prelude's.
    pub fn in_process(&self) -> Option<&[String]> {
        self.in_process.as_deref()
    }

    /// Whether a program whose entry file is `entry` cannot use a warm sandbox (Node's ES modules start
    /// differently from what its prelude does).
    pub fn runs_cold(&self, entry: &Path) -> bool {
        entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| self.cold_extensions.iter().any(|c| c.eq_ignore_ascii_case(e)))
    }
}

/// A program's argv as a language file gives it: not empty, the program an absolute path.
fn check_command(argv: &[String]) -> Result<(), (usize, String)> {
    let Some(program) = argv.first() else {
        return Err((0, "must not be empty".into()));
    };
    check_absolute(program).map_err(|m| (0, m))?;
    match argv.iter().position(|a| a.contains('\0')) {
        Some(i) => Err((i, "must not contain a NUL byte".into())),
        None => Ok(()),
    }
}

fn worker_source(name: &str) -> Result<&'static str, String> {
    crate::workers::source(name).ok_or_else(|| {
        let known: Vec<&str> = crate::workers::names().collect();
        format!("{name:?} is not one of the worker programs ({})", known.join(", "))
    })
}

pub(crate) fn build_session(origin: &Path, raw: spec::SessionFile) -> Result<SessionWorker, LangError> {
    let bad = |field: String, message: String| LangError::invalid(origin, field, message);
    let source = worker_source(&raw.worker).map_err(|m| bad("session.worker".into(), m))?;
    check_command(&raw.argv).map_err(|(i, m)| bad(format!("session.argv[{i}]"), m))?;
    for (key, value) in &raw.env {
        let field = format!("session.env.{key}");
        check_env_name(key).map_err(|m| bad(field.clone(), m))?;
        if value.contains('\0') {
            return Err(bad(field, "value must not contain a NUL byte".into()));
        }
    }
    Ok(SessionWorker {
        worker: raw.worker,
        source,
        argv: raw.argv,
        env: raw.env,
    })
}

pub(crate) fn build_pool(origin: &Path, raw: spec::PoolFile, extensions: &[String]) -> Result<Pool, LangError> {
    let bad = |field: String, message: String| LangError::invalid(origin, field, message);
    let source = worker_source(&raw.prelude).map_err(|m| bad("pool.prelude".into(), m))?;
    check_command(&raw.argv).map_err(|(i, m)| bad(format!("pool.argv[{i}]"), m))?;
    if raw.argv.iter().filter(|a| *a == PRELUDE).count() != 1 {
        return Err(bad(
            "pool.argv".into(),
            format!("must contain {PRELUDE} exactly once (the prelude's text)"),
        ));
    }
    if let Some(argv) = &raw.in_process {
        check_command(argv).map_err(|(i, m)| bad(format!("pool.in_process[{i}]"), m))?;
    }
    for (i, ext) in raw.cold_extensions.iter().enumerate() {
        if !extensions.contains(ext) {
            return Err(bad(
                format!("pool.cold_extensions[{i}]"),
                format!("{ext:?} is not one of the language's extensions"),
            ));
        }
    }
    Ok(Pool {
        prelude: raw.prelude,
        source,
        argv: raw.argv,
        in_process: raw.in_process,
        cold_extensions: raw.cold_extensions,
    })
}

/// A cell magic's name: lowercase letters, digits, `-`, `+` and single inner spaces (`script bash`).
pub(crate) fn check_magic(magic: &str) -> Result<(), String> {
    let ok = !magic.is_empty()
        && magic.trim() == magic
        && !magic.contains("  ")
        && magic
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '+' | ' '));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "magic {magic:?} must be lowercase letters, digits, '-', '+' and single inner spaces"
        ))
    }
}
