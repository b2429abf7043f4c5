//! A WebSocket cell (`/ws`, `execute` with a `session_id`) for a session that lives on another node. The socket
//! stays with the node the client reached; the cell runs on the owner through its SSE route
//! (`POST /sessions/{id}/execute/stream`), whose events are turned back into the socket's messages as they
//! arrive, and `cancel` becomes the owner's `POST /sessions/{id}/interrupt`. The caller's own key goes with
//! them (see [`super::forward`] for why the caller's credentials, not a node secret).

use std::sync::Arc;

use axum::http::HeaderValue;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::forward::{FORWARDED_BY, LOST_REASON};
use super::Owner;
use crate::auth::Caller;
use crate::state::AppState;

/// The owner's base URL and node id when `session` lives on another node this one can reach.
pub fn foreign(state: &AppState, session: &str) -> Option<(String, String)> {
    match state.cluster.owner_of(session) {
        Owner::Peer { node, base } => Some((node, base)),
        _ => None,
    }
}

fn request(state: &AppState, caller: &Caller, url: String) -> reqwest::RequestBuilder {
    let mut req = state.cluster.client().post(url);
    if let Some(k) = caller.key {
        req = req.bearer_auth(&state.admission.key(k).key);
    }
    if let Ok(v) = HeaderValue::from_str(&state.cluster.node) {
        req = req.header(FORWARDED_BY, v);
    }
    req
}

/// The socket's `error` message for a session whose node is gone.
fn lost(state: &AppState, id: &str, node: &str, reason: &str) -> Value {
    if reason == "node_draining" {
        state.cluster.note_draining(node);
    }
    json!({"type": "error", "id": id, "code": "session_lost",
        "message": format!("node {node}, which held this session, is gone ({reason}); start a new session"),
        "details": {"node": node, "reason": reason}})
}

/// Runs the cell on the owner, sending its events to `out`; returns the last message (`result` or `error`).
pub async fn run(
    state: Arc<AppState>,
    caller: Caller,
    (node, base): (String, String),
    session: String,
    body: Value,
    id: String,
    out: mpsc::UnboundedSender<Value>,
) -> Value {
    let cell = json!({"code": body.get("code"), "timeout_ms": body.get("timeout_ms")});
    let url = format!("{base}/sessions/{session}/execute/stream");
    let answer = match request(&state, &caller, url).json(&cell).send().await {
        Ok(a) => a,
        Err(_) => return lost(&state, &id, &node, state.cluster.lost_reason(&node)),
    };
    if !answer.status().is_success() {
        let reason = answer
            .headers()
            .get(LOST_REASON)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let error: Value = answer.json().await.unwrap_or_else(|_| json!({}));
        if let Some(reason) = reason {
            return lost(&state, &id, &node, &reason);
        }
        return json!({"type": "error", "id": id, "code": error["code"], "message": error["message"],
            "details": error.get("details")});
    }
    let _ = out.send(json!({"type": "started", "id": id}));
    let mut events = SseParser::default();
    let mut stream = answer.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        for (name, data) in events.push(&chunk) {
            let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            match name.as_str() {
                "result" => return json!({"type": "result", "id": id, "result": data}),
                "error" => {
                    return json!({"type": "error", "id": id, "code": data["code"], "message": data["message"],
                        "details": data.get("details")})
                }
                _ => {
                    let mut message = data;
                    if message.is_object() {
                        message["type"] = json!(name);
                        message["id"] = json!(id);
                        let _ = out.send(message);
                    }
                }
            }
        }
    }
    // The stream ended without a result: the owner went away mid-cell.
    lost(&state, &id, &node, state.cluster.lost_reason(&node))
}

/// Interrupts a cell of a session on another node (the socket's `cancel`).
pub async fn interrupt(state: Arc<AppState>, caller: Caller, (_, base): (String, String), session: String) {
    let url = format!("{base}/sessions/{session}/interrupt");
    let _ = request(&state, &caller, url).send().await;
}

/// Server-Sent Events, parsed from chunks as they come: `(event, data)` pairs; comments (keep-alives) skipped.
#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.pending.extend(bytes.iter().filter(|&&b| b != b'\r'));
        let mut out = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.pending.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            let (mut name, mut data) = (String::from("message"), Vec::new());
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim_start().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                }
            }
            if !data.is_empty() {
                out.push((name, data.join("\n")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: stdout\ndata: {\"da").is_empty());
        let got = p.push(b"ta\":\"x\"}\n\n: keep-alive\n\nevent: result\r\ndata: {}\r\n\r\n");
        assert_eq!(
            got,
            [
                ("stdout".to_string(), "{\"data\":\"x\"}".to_string()),
                ("result".to_string(), "{}".to_string())
            ]
        );
    }
}
