//! The language workers that run inside session sandboxes: which program a language uses (its file's
//! `[session]`, see `runbox_lang::SessionWorker`), and the bits of their line protocol the manager needs.

use runbox_lang::{Language, SessionWorker};

/// How a language's sessions run: its file's `[session]` (worker program, interpreter argv, extra environment),
/// or `None` when it has no sessions.
pub(super) fn worker_for(lang: &Language) -> Option<&SessionWorker> {
    lang.session()
}

/// End (exclusive) of the worker's `ready` line in `bytes`, if it is there.
pub(super) fn ready_line_end(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(pos) = bytes[start..].iter().position(|&b| b == b'\n') {
        let line = &bytes[start..start + pos];
        if serde_json::from_slice::<serde_json::Value>(line).is_ok_and(|v| v["event"] == "ready") {
            return Some(start + pos + 1);
        }
        start += pos + 1;
    }
    None
}
