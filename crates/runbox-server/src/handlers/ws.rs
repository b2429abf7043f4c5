//! `GET /ws`: executions over one WebSocket. The client sends JSON messages:
//! `{"type":"execute","id":"a","language":..,"code":..}` (also `execute_code`; every `/execute` field works),
//! `{"type":"stdin","id":"a","data":".."}`, `{"type":"stdin_eof","id":"a"}`, `{"type":"cancel","id":"a"}`.
//! The server answers `started`, `compile`, `stdout`, `stderr` (`{data, base64?}`), then `result` (the execution
//! result) or `error`, each with the run's `id`. Several runs may be in flight on one socket.
//!
//! With a `session_id`, an `execute` message runs `code` as a cell of that session instead (events `stdout`,
//! `stderr`, `display`, then `result` with the cell result); `cancel` then interrupts the cell.

use runbox_engine::sync::LockOrRecover;
use std::collections::HashMap;
use std::io::Read;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use runbox_engine::CancelToken;

use crate::api::ExecuteBody;
use crate::auth::{offered_protocols, Caller, WS_KEY_PREFIX, WS_PROTOCOL};
use crate::error::{ApiError, ErrorBody};
use crate::events::EventTranslator;
use crate::extract::parse;
use crate::origins::AllowedOrigin;
use crate::running::{admit, run_admitted};
use crate::state::AppState;

/// The program's stdin, fed by WebSocket messages. Ends at `stdin_eof`, or when the run's handle is dropped.
struct ChannelReader {
    rx: std_mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            match self.rx.recv() {
                Ok(data) if data.is_empty() => return Ok(0), // stdin_eof
                Ok(data) => self.pending = data,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

struct RunHandle {
    stdin: Option<std_mpsc::Sender<Vec<u8>>>,
    cancel: Option<CancelToken>,
    /// For a session cell: the session to interrupt on `cancel`.
    session: Option<String>,
}

type Runs = Arc<Mutex<HashMap<String, RunHandle>>>;

/// Interactive executions over a WebSocket.
///
/// A page may connect from this server's own origin, from loopback, or from an origin in `cors_origins`; others
/// get 403. Browsers, which cannot set headers here, authenticate by offering the subprotocols `runbox.v1` and
/// `runbox.key.<the key in unpadded base64url>`; the server selects `runbox.v1` and never echoes the key.
#[utoipa::path(get, path = "/ws", operation_id = "websocket", tag = "execution",
    responses((status = 101, description = "Switching to the WebSocket protocol described above"),
        (status = 400, description = "Not a WebSocket handshake, or no runbox.v1 among the offered subprotocols", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn socket(
    State(state): State<Arc<AppState>>,
    _origin: AllowedOrigin,
    caller: Caller,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Without a handshake the answer is the API's JSON error, not axum's text.
    let ws = ws.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "websocket_upgrade_required",
            format!("this route speaks WebSocket only: {}", rejection.body_text()),
        )
    })?;
    // A client that offers subprotocols needs one in the answer (browsers fail the connection otherwise), and
    // the only one this server may answer with is the plain protocol: never the key.
    if offered_protocols(&headers).next().is_some() && !offered_protocols(&headers).any(|p| p == WS_PROTOCOL) {
        return Err(ApiError::bad_request(format!(
            "offer the {WS_PROTOCOL:?} subprotocol (alongside {WS_KEY_PREFIX}<key>, if you authenticate that way)"
        )));
    }
    Ok(ws
        .protocols([WS_PROTOCOL])
        .on_upgrade(move |socket| handle(socket, state, caller)))
}

fn error_message(id: &str, e: &ApiError) -> Value {
    json!({"type": "error", "id": id, "code": e.code, "message": e.message, "details": e.details})
}

async fn handle(socket: WebSocket, state: Arc<AppState>, caller: Caller) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if sink.send(Message::Text(msg.to_string().into())).await.is_err() {
                break;
            }
        }
    });
    let runs: Runs = Arc::new(Mutex::new(HashMap::new()));
    let mut counter = 0u64;
    while let Some(Ok(msg)) = stream.next().await {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            Message::Close(_) => break,
            _ => continue,
        };
        let mut value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                let _ = out_tx.send(error_message(
                    "",
                    &ApiError::bad_request(format!("malformed JSON: {e}")),
                ));
                continue;
            }
        };
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        let id = match value.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                counter += 1;
                format!("run-{counter}")
            }
        };
        match kind.as_str() {
            "execute" | "execute_code" => {
                if runs.lock_or_recover().contains_key(&id) {
                    let e = ApiError::invalid_field("id", "a run with this id is already in flight on this socket");
                    let _ = out_tx.send(error_message(&id, &e));
                    continue;
                }
                // Each execution is a request of its own for the key's rate limit, not just the upgrade.
                if let Err(e) = state.admission.check_rate(caller.key) {
                    let _ = out_tx.send(error_message(&id, &e));
                    continue;
                }
                if let Some(obj) = value.as_object_mut() {
                    obj.remove("type");
                    obj.remove("id");
                }
                match value.get("session_id").and_then(Value::as_str).map(String::from) {
                    Some(session) => start_cell(&state, &caller, &runs, &out_tx, id, session, value),
                    None => start_run(&state, &caller, &runs, &out_tx, id, value),
                }
            }
            "stdin" => {
                let data = value
                    .get("data")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .as_bytes()
                    .to_vec();
                let guard = runs.lock_or_recover();
                match guard.get(&id).and_then(|r| r.stdin.as_ref()) {
                    Some(tx) if !data.is_empty() => drop(tx.send(data)),
                    Some(_) => {}
                    None => drop(out_tx.send(error_message(&id, &ApiError::not_found("run")))),
                }
            }
            "stdin_eof" => {
                if let Some(run) = runs.lock_or_recover().get_mut(&id) {
                    if let Some(tx) = run.stdin.take() {
                        let _ = tx.send(Vec::new());
                    }
                }
            }
            "cancel" => {
                let guard = runs.lock_or_recover();
                match guard.get(&id) {
                    Some(RunHandle {
                        session: Some(session), ..
                    }) => match crate::cluster::ws_cell::foreign(&state, session) {
                        Some(owner) => drop(tokio::spawn(crate::cluster::ws_cell::interrupt(
                            state.clone(),
                            caller.clone(),
                            owner,
                            session.clone(),
                        ))),
                        None => drop(state.sessions.interrupt(&caller.owner, session)),
                    },
                    Some(RunHandle {
                        cancel: Some(token), ..
                    }) => token.cancel(),
                    _ => drop(out_tx.send(error_message(&id, &ApiError::not_found("run")))),
                }
            }
            other => {
                let e = ApiError::invalid_field("type", format!("unknown message type {other:?}"));
                let _ = out_tx.send(error_message(&id, &e));
            }
        }
    }
    // The socket closed: cancel whatever still runs.
    for (_, run) in runs.lock_or_recover().drain() {
        if let Some(token) = run.cancel {
            token.cancel();
        }
    }
    drop(out_tx);
    let _ = writer.await;
}

fn start_run(
    state: &Arc<AppState>,
    caller: &Caller,
    runs: &Runs,
    out: &mpsc::UnboundedSender<Value>,
    id: String,
    body: Value,
) {
    let body: ExecuteBody = match parse(body.to_string().as_bytes()) {
        Ok(b) => b,
        Err(e) => {
            let _ = out.send(error_message(&id, &e));
            return;
        }
    };
    let req = match body.into_request(&state.config.limits, state.engine.catalogue()) {
        Ok(r) => r,
        Err(e) => {
            let _ = out.send(error_message(&id, &e));
            return;
        }
    };
    let (stdin_tx, stdin_rx) = std_mpsc::channel::<Vec<u8>>();
    if !req.stdin.is_empty() {
        let _ = stdin_tx.send(req.stdin.clone());
    }
    runs.lock_or_recover().insert(
        id.clone(),
        RunHandle {
            stdin: Some(stdin_tx),
            cancel: None,
            session: None,
        },
    );
    let (state, caller, runs, out) = (state.clone(), caller.clone(), runs.clone(), out.clone());
    tokio::spawn(async move {
        let admitted = match admit(&state, &caller, req).await {
            Ok(p) => p,
            Err(e) => {
                runs.lock_or_recover().remove(&id);
                let _ = out.send(error_message(&id, &e));
                return;
            }
        };
        let cancelled_early = match runs.lock_or_recover().get_mut(&id) {
            Some(run) => {
                run.cancel = Some(admitted.permit.cancel.clone());
                false
            }
            None => true, // the socket closed while the run waited for a slot
        };
        if cancelled_early {
            return;
        }
        let _ = out.send(json!({"type": "started", "id": id}));
        let stdin: Box<dyn Read + Send> = Box::new(ChannelReader {
            rx: stdin_rx,
            pending: Vec::new(),
        });
        let events = out.clone();
        let event_id = id.clone();
        let mut translator = EventTranslator::default();
        let result = run_admitted(&state, admitted, Some(stdin), move |ev| {
            if let Some((name, mut data)) = translator.translate(ev) {
                data["type"] = json!(name);
                data["id"] = json!(event_id);
                return events.send(data).is_ok();
            }
            !events.is_closed()
        })
        .await;
        runs.lock_or_recover().remove(&id);
        let _ = out.send(match result {
            Ok(r) => json!({"type": "result", "id": id, "result": r}),
            Err(e) => error_message(&id, &e),
        });
    });
}

/// Runs `{code, timeout_ms}` as a cell of a session, streaming its events.
fn start_cell(
    state: &Arc<AppState>,
    caller: &Caller,
    runs: &Runs,
    out: &mpsc::UnboundedSender<Value>,
    id: String,
    session: String,
    body: Value,
) {
    let code = body.get("code").and_then(Value::as_str).map(String::from);
    let timeout_ms = body.get("timeout_ms").and_then(Value::as_u64);
    let Some(code) = code else {
        let _ = out.send(error_message(
            &id,
            &ApiError::invalid_field("code", "a session cell needs `code`"),
        ));
        return;
    };
    let handle = RunHandle {
        stdin: None,
        cancel: None,
        session: Some(session.clone()),
    };
    runs.lock_or_recover().insert(id.clone(), handle);
    // A session of another node: the cell runs there (see `crate::cluster::ws_cell`).
    if let Some(node) = crate::cluster::ws_cell::foreign(state, &session) {
        let (state, caller, runs, out) = (state.clone(), caller.clone(), runs.clone(), out.clone());
        tokio::spawn(async move {
            let last = crate::cluster::ws_cell::run(state, caller, node, session, body, id.clone(), out.clone()).await;
            runs.lock_or_recover().remove(&id);
            let _ = out.send(last);
        });
        return;
    }
    let (sessions, owner, runs, out) = (state.sessions.clone(), caller.owner.clone(), runs.clone(), out.clone());
    tokio::task::spawn_blocking(move || {
        let _ = out.send(json!({"type": "started", "id": id}));
        let mut translator = crate::events::CellTranslator::default();
        let events = out.clone();
        let event_id = id.clone();
        let result = sessions.execute(&owner, &session, &code, timeout_ms, &mut |ev| {
            if let Some((name, mut data)) = translator.translate(ev) {
                data["type"] = json!(name);
                data["id"] = json!(event_id);
                let _ = events.send(data);
            }
        });
        runs.lock_or_recover().remove(&id);
        let _ = out.send(match result {
            Ok(r) => json!({"type": "result", "id": id, "result": r}),
            Err(e) => error_message(&id, &ApiError::from(e)),
        });
    });
}
