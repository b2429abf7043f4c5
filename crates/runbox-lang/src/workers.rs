//! The programs that run inside sandboxes on the engine's behalf (`workers/` of the repository, embedded): session
//! workers and warm-sandbox preludes, which language files name in `[session]` and `[pool]`, and the zygote.
//! Language files, embedded or an operator's, name them by file name; a name that is not here is refused at load.

/// The zygote program (Python) that forks warm sandboxes (see the engine's `zygotes.rs`).
pub const ZYGOTE: &str = "zygote.py";

/// The prelude of a warm sandbox of a language whose file has no `[pool]`: a shell that `exec`s the language's
/// own run command.
pub const EXEC_PRELUDE: &str = "exec_pooled.sh";

/// The text of the worker program `name` (`python_worker.py`).
pub fn source(name: &str) -> Option<&'static str> {
    crate::embedded::WORKERS.iter().find(|w| w.path == name).map(|w| w.text)
}

/// Every worker program's file name.
pub fn names() -> impl Iterator<Item = &'static str> {
    crate::embedded::WORKERS.iter().map(|w| w.path)
}
