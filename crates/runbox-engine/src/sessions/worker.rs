//! The language workers that run inside session sandboxes: which program a language uses (its file's
//! `[session]`, see `runbox_lang::SessionWorker`), and the bits of their line protocol the manager needs.

use runbox_lang::{Language, SessionWorker};
use serde::Deserialize;
use serde_json::Value;

/// A message a session worker writes on its protocol descriptor: one JSON object per line, named by its `event`.
/// Every worker of `workers/` speaks these; the fields of each stay as the worker wrote them (a field of an
/// unexpected type reads as absent, as it always has).
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub(super) enum WorkerMessage {
    /// The worker has started and waits for cells.
    Ready,
    /// A rich output of the running cell: a MIME bundle in `data`.
    Display {
        #[serde(default)]
        data: Value,
    },
    /// The worker (or the host, for a line too long to keep) dropped rich outputs.
    Dropped,
    /// A cell finished.
    Done(Done),
    /// Any other event: ignored.
    #[serde(other)]
    Other,
}

/// The end of a cell: `{"event": "done", "id", "status", "result", "error", "exit_code", "execution_count"}`.
#[derive(Debug, Deserialize)]
pub(super) struct Done {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    status: Value,
    /// The trailing expression's MIME bundle.
    #[serde(default)]
    pub result: Value,
    /// `{name, value, traceback}` of an uncaught error.
    #[serde(default)]
    pub error: Value,
    #[serde(default)]
    exit_code: Value,
    #[serde(default)]
    execution_count: Value,
}

impl Done {
    /// The cell it ends (the number the host sent with `EXEC`).
    pub fn id(&self) -> Option<u64> {
        self.id.as_u64()
    }

    /// `ok`, `error`, `interrupted` or `exit`.
    pub fn status(&self) -> Option<&str> {
        self.status.as_str()
    }

    /// The code `exit()` was called with, for status `exit`.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code.as_i64().map(|c| c as i32)
    }

    pub fn execution_count(&self) -> Option<u64> {
        self.execution_count.as_u64()
    }
}

impl WorkerMessage {
    /// The message a protocol line holds (`Other` when it is none of the known ones).
    pub(super) fn from_line(line: Value) -> WorkerMessage {
        serde_json::from_value(line).unwrap_or(WorkerMessage::Other)
    }
}

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
        if serde_json::from_slice::<Value>(line)
            .is_ok_and(|v| matches!(WorkerMessage::from_line(v), WorkerMessage::Ready))
        {
            return Some(start + pos + 1);
        }
        start += pos + 1;
    }
    None
}

/// Longest worker message kept while its end has not arrived (a cell's PNG figures make the largest ones).
pub(super) const MAX_WORKER_LINE: usize = 8 << 20;

/// The host's side of the worker protocol: adds `bytes` (any chunk of what the worker wrote) to `pending` and
/// returns the JSON messages completed by it, one per line; lines that are not JSON are skipped. A line longer
/// than `max_line` is dropped rather than held, and one `{"event": "dropped"}` says so. Public for the fuzz
/// targets (`fuzz/`), which feed it arbitrary bytes in arbitrary chunks.
pub fn split_worker_lines(pending: &mut Vec<u8>, bytes: &[u8], max_line: usize) -> Vec<serde_json::Value> {
    // Only the new bytes can end a line: scanning from there keeps a long message (a figure arriving in many
    // frames) linear rather than rescanned with every frame.
    let mut from = pending.len();
    pending.extend_from_slice(bytes);
    let mut lines = Vec::new();
    while let Some(pos) = pending[from..].iter().position(|&b| b == b'\n').map(|p| p + from) {
        let line: Vec<u8> = pending.drain(..=pos).collect();
        from = 0;
        if let Ok(v) = serde_json::from_slice(&line) {
            lines.push(v);
        }
    }
    // A line longer than any message the workers send is dropped, not held (one `dropped` event says so: it
    // was most likely a rich output too large to keep).
    if pending.len() > max_line {
        pending.clear();
        lines.push(serde_json::json!({"event": "dropped"}));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn worker_messages_are_read_by_their_event_and_anything_else_is_ignored() {
        assert!(matches!(
            WorkerMessage::from_line(json!({"event": "ready"})),
            WorkerMessage::Ready
        ));
        assert!(matches!(
            WorkerMessage::from_line(json!({"event": "dropped"})),
            WorkerMessage::Dropped
        ));
        match WorkerMessage::from_line(json!({"event": "display", "data": {"text/plain": "1"}})) {
            WorkerMessage::Display { data } => assert_eq!(data["text/plain"], "1"),
            other => panic!("{other:?}"),
        }
        let done = json!({"event": "done", "id": 3, "status": "exit", "exit_code": 2, "execution_count": 4,
                          "result": {"text/plain": "42"}});
        match WorkerMessage::from_line(done) {
            WorkerMessage::Done(d) => {
                assert_eq!(
                    (d.id(), d.status(), d.exit_code(), d.execution_count()),
                    (Some(3), Some("exit"), Some(2), Some(4))
                );
                assert_eq!(d.result["text/plain"], "42");
            }
            other => panic!("{other:?}"),
        }
        // A field of an unexpected type reads as absent; the message is still a `done`.
        match WorkerMessage::from_line(json!({"event": "done", "id": 1, "exit_code": "x", "status": 5})) {
            WorkerMessage::Done(d) => assert_eq!((d.id(), d.status(), d.exit_code()), (Some(1), None, None)),
            other => panic!("{other:?}"),
        }
        for other in [
            json!({"event": "progress"}),
            json!({"no_event": 1}),
            json!([1]),
            json!("ready"),
        ] {
            assert!(matches!(WorkerMessage::from_line(other), WorkerMessage::Other));
        }
    }
}
