//! Event translation shared by the streaming routes: an execution's [`ExecEvent`]s and a session cell's
//! [`CellEvent`]s become named JSON events (SSE events on `/execute/stream` and `/sessions/{id}/execute/stream`,
//! typed messages on `/ws`), with UTF-8 characters kept whole per stream.

use runbox_engine::sessions::CellEvent;
use runbox_engine::{ExecEvent, OutputStream, Stage};

use crate::chunk::Utf8Chunker;

/// Turns engine events into SSE events, keeping UTF-8 characters whole per stream.
#[derive(Default)]
pub struct EventTranslator {
    chunkers: [Utf8Chunker; 4],
}

impl EventTranslator {
    pub fn translate(&mut self, ev: ExecEvent<'_>) -> Option<(String, serde_json::Value)> {
        match ev {
            ExecEvent::Output { stage, stream, data } => {
                let (slot, name) = match (stage, stream) {
                    (Stage::Compile, OutputStream::Stdout) => (0, "compile"),
                    (Stage::Compile, OutputStream::Stderr) => (1, "compile"),
                    (Stage::Run, OutputStream::Stdout) => (2, "stdout"),
                    (Stage::Run, OutputStream::Stderr) => (3, "stderr"),
                };
                let chunk = self.chunkers[slot].push(data)?;
                let mut value = serde_json::to_value(chunk).ok()?;
                if name == "compile" {
                    value["stream"] = serde_json::json!(if slot == 0 { "stdout" } else { "stderr" });
                }
                Some((name.to_string(), value))
            }
            ExecEvent::TestCase(case) => Some(("test_case".into(), serde_json::to_value(case).ok()?)),
            ExecEvent::StageStarted(_) => None,
        }
    }
}

/// Turns a session cell's events into named JSON events (`stdout`, `stderr`, `display`), keeping UTF-8 characters
/// whole per stream; shared by the SSE and WebSocket routes.
#[derive(Default)]
pub struct CellTranslator {
    chunkers: [Utf8Chunker; 2],
}

impl CellTranslator {
    pub fn translate(&mut self, ev: CellEvent<'_>) -> Option<(&'static str, serde_json::Value)> {
        match ev {
            CellEvent::Stdout(b) => Some(("stdout", serde_json::to_value(self.chunkers[0].push(b)?).ok()?)),
            CellEvent::Stderr(b) => Some(("stderr", serde_json::to_value(self.chunkers[1].push(b)?).ok()?)),
            CellEvent::Display(out) => Some(("display", serde_json::to_value(out).ok()?)),
        }
    }
}
