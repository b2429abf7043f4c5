//! `GET /api/v2/connect`: Piston's interactive WebSocket. The client sends `{"type":"init", ...}` (the fields of
//! `POST /api/v2/execute`) within a second, then `{"type":"data","stream":"stdin","data":...}` to feed the
//! program and `{"type":"signal","signal":"SIGKILL"}` to stop it. The server sends `runtime`, `stage`, `data`
//! (stdout/stderr as they come) and an `exit` per stage, then closes with 4999 "Job Completed". Failures are
//! `{"type":"error","message"}` and close codes 4000-4005, as Piston uses them. Differences: every signal
//! stops the run (runbox cancels, it does not relay signals), and the `exit` messages come once the run is over.

use std::io::Read;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use runbox_engine::{ExecEvent, OutputStream, Stage};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::wire::{signal_name, to_piston};
use super::{prepare, PistonCaller, PistonError};
use crate::auth::Caller;
use crate::chunk::Utf8Chunker;
use crate::origins::AllowedOrigin;
use crate::running::{admit, run_admitted};
use crate::state::AppState;

/// The program's stdin: what `init` gave, then each `data` message; ends when the socket goes.
struct StdinReader {
    rx: std_mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

impl Read for StdinReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            match self.rx.recv() {
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

/// Piston: an interactive run over a WebSocket (Piston's `init`/`data`/`signal` protocol).
#[utoipa::path(get, path = "/api/v2/connect", operation_id = "pistonConnect", tag = "piston",
    responses((status = 101, description = "Switching to Piston's WebSocket protocol described above"),
        (status = 400, description = "Not a WebSocket handshake"), (status = 401, body = super::PistonMessage), (status = 403, body = crate::error::ErrorBody),
        (status = 429, body = super::PistonMessage)))]
pub async fn connect(
    State(state): State<Arc<AppState>>,
    _origin: AllowedOrigin,
    PistonCaller(caller): PistonCaller,
    ws: WebSocketUpgrade,
) -> Result<Response, PistonError> {
    Ok(ws.on_upgrade(move |socket| session(socket, state, caller)))
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

/// The JSON of a client message, or None for anything else (pings, binary noise).
fn parse(msg: Message) -> Option<Result<Value, String>> {
    match msg {
        Message::Text(t) => Some(serde_json::from_str(&t).map_err(|e| e.to_string())),
        Message::Binary(b) => Some(serde_json::from_slice(&b).map_err(|e| e.to_string())),
        _ => None,
    }
}

async fn session(socket: WebSocket, state: Arc<AppState>, caller: Caller) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            let last = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || last {
                break;
            }
        }
    });
    let fail = |message: String| {
        let _ = out.send(text(json!({"type": "error", "message": message})));
        let _ = out.send(close(4002, "Notified Error"));
    };

    // Piston waits one second for `init`.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let init = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                let _ = out.send(close(4001, "Initialization Timeout"));
                break None;
            }
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break None,
            Ok(Some(Ok(msg))) => match parse(msg) {
                None => continue,
                Some(Err(e)) => {
                    fail(e);
                    break None;
                }
                Some(Ok(v)) => match v["type"].as_str() {
                    Some("init") => break Some(v),
                    Some("data") | Some("signal") => {
                        let _ = out.send(close(4003, "Not yet initialized"));
                        break None;
                    }
                    _ => continue,
                },
            },
        }
    };
    if let Some(init) = init {
        run(&state, &caller, init, &mut stream, &out, fail).await;
    }
    drop(out);
    let _ = writer.await;
}

async fn run(
    state: &Arc<AppState>,
    caller: &Caller,
    init: Value,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    out: &mpsc::UnboundedSender<Message>,
    fail: impl Fn(String),
) {
    let (mut req, version) = match prepare(state, &init).await {
        Ok(p) => p,
        Err(e) => return fail(e.message),
    };
    // The request's stdin comes first on the streamed stdin the run reads.
    let pending = std::mem::take(&mut req.stdin);
    let admitted = match admit(state, caller, req).await {
        Ok(p) => p,
        Err(e) => return fail(e.message),
    };
    let _ = out.send(text(
        json!({"type": "runtime", "language": admitted.prepared.request().language, "version": version}),
    ));
    let (stdin_tx, stdin_rx) = std_mpsc::channel();
    let reader = StdinReader { rx: stdin_rx, pending };
    let cancel = admitted.permit.cancel.clone();
    let events = out.clone();
    let mut chunkers: [Utf8Chunker; 2] = Default::default();
    let on_event = move |ev: ExecEvent<'_>| {
        let msg = match ev {
            ExecEvent::StageStarted(stage) => Some(json!({"type": "stage", "stage": stage_name(stage)})),
            ExecEvent::Output { stream, data, .. } => {
                let (slot, name) = match stream {
                    OutputStream::Stdout => (0, "stdout"),
                    OutputStream::Stderr => (1, "stderr"),
                };
                chunkers[slot]
                    .push(data)
                    .map(|c| json!({"type": "data", "stream": name, "data": c.data}))
            }
            ExecEvent::TestCase(_) => None,
        };
        msg.is_none_or(|m| events.send(text(m)).is_ok())
    };
    let state2 = state.clone();
    let mut running =
        tokio::spawn(async move { run_admitted(&state2, admitted, Some(Box::new(reader)), on_event).await });
    let mut stdin = Some(stdin_tx);
    let result = loop {
        tokio::select! {
            done = &mut running => break done,
            msg = stream.next() => {
                let msg = match msg {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        // The client went away: stop the run and wait for it to end.
                        stdin = None;
                        cancel.cancel();
                        break (&mut running).await;
                    }
                    Some(Ok(msg)) => msg,
                };
                let Some(parsed) = parse(msg) else { continue };
                let v = match parsed {
                    Ok(v) => v,
                    Err(e) => { cancel.cancel(); fail(e); break (&mut running).await; }
                };
                match v["type"].as_str() {
                    Some("init") => { cancel.cancel(); let _ = out.send(close(4000, "Already Initialized")); break (&mut running).await; }
                    Some("data") if v["stream"] == "stdin" => {
                        let data = v["data"].as_str().unwrap_or("").as_bytes().to_vec();
                        if let (Some(tx), false) = (&stdin, data.is_empty()) {
                            let _ = tx.send(data);
                        }
                    }
                    Some("data") => { cancel.cancel(); let _ = out.send(close(4004, "Can only write to stdin")); break (&mut running).await; }
                    Some("signal") if v["signal"].as_str().is_some_and(|s| (1..32).any(|n| signal_name(n) == s)) => cancel.cancel(),
                    Some("signal") => { cancel.cancel(); let _ = out.send(close(4005, "Invalid signal")); break (&mut running).await; }
                    _ => {}
                }
            }
        }
    };
    drop(stdin);
    match result {
        Ok(Ok(r)) => {
            let p = to_piston(&r, &version);
            if let Some(c) = &p.compile {
                let _ = out.send(text(
                    json!({"type": "exit", "stage": "compile", "code": c.code, "signal": c.signal}),
                ));
            }
            if r.run.is_some() || r.compile.is_none() {
                let _ = out.send(text(
                    json!({"type": "exit", "stage": "run", "code": p.run.code, "signal": p.run.signal}),
                ));
            }
            let _ = out.send(close(4999, "Job Completed"));
        }
        Ok(Err(e)) => fail(e.message),
        Err(e) => fail(e.to_string()),
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Compile => "compile",
        Stage::Run => "run",
    }
}
