//! Floods that are more than one request: thousands of messages on one WebSocket, and connections that send half a
//! body and stall. Each ends with an honest run that must still be served.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::case::Step;
use super::run::Ctx;
use crate::live_server::KEY_A;

impl Ctx {
    /// Many messages on one WebSocket, then one honest run on it: that run must still be answered.
    pub(super) async fn ws_flood(&self, step: &Step, key: Option<&str>) -> Result<(), String> {
        let mut request = format!("ws://{}/ws", self.server.addr)
            .into_client_request()
            .map_err(|e| e.to_string())?;
        if let Some(k) = key {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {k}").parse().unwrap());
        }
        let (ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(request))
            .await
            .map_err(|_| "WebSocket handshake timed out".to_string())?
            .map_err(|e| format!("WebSocket handshake: {e}"))?;
        let message = match &step.body_gen {
            Some(_) => String::from_utf8_lossy(&self.body_bytes(step)?).into_owned(),
            None => self.fill(step.message.as_deref().unwrap_or("{}")),
        };
        let count = step.count.unwrap_or(1000);
        let (mut tx, mut rx) = ws.split();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(30), rx.next()).await {
                let Ok(Message::Text(t)) = m else {
                    if m.is_err() {
                        break;
                    } else {
                        continue;
                    }
                };
                let done = t.contains("\"id\":\"final\"")
                    && (t.contains("\"type\":\"result\"") || t.contains("\"type\":\"error\""));
                got.push(t.to_string());
                if done {
                    break;
                }
            }
            got
        });
        let sent = async {
            for i in 0..count {
                tx.send(Message::text(message.replace("@i@", &i.to_string()))).await?;
            }
            let final_run = json!({"type": "execute", "id": "final", "language": "python", "code": "print(7 * 6)"});
            tx.send(Message::text(final_run.to_string())).await
        };
        let send_result = tokio::time::timeout(Duration::from_secs(60), sent).await;
        let got = reader.await.map_err(|e| e.to_string())?;
        // Answered: its result, or an error saying why it was refused (a flood of runs may fill the key's share).
        let answered = got
            .iter()
            .any(|t| t.contains("\"id\":\"final\"") && (t.contains("42") || t.contains("\"type\":\"error\"")));
        match (send_result, step.status.as_deref()) {
            // The server may close a socket that misbehaves; then it must have said why.
            (Ok(Err(_)), Some([s])) if s == "closed" => Ok(()),
            (Ok(Ok(())), _) if answered => {
                let all = got.join("\n");
                if all.contains(&self.secret) {
                    return Err("the host's secret reached a WebSocket message".into());
                }
                for want in step.has.iter().flatten().map(|w| self.fill(w)) {
                    if !all.contains(&want) {
                        return Err(format!("{want:?} missing from the WebSocket messages: {:.600}", all));
                    }
                }
                for bad in step.lacks.iter().flatten().map(|w| self.fill(w)) {
                    if all.contains(&bad) {
                        return Err(format!("{bad:?} present in the WebSocket messages: {:.600}", all));
                    }
                }
                Ok(())
            }
            (r, _) => {
                // HOSTILE_WS_DUMP=FILE keeps every message the socket returned, to see what happened.
                if let Ok(path) = std::env::var("HOSTILE_WS_DUMP") {
                    let _ = std::fs::write(path, got.join("\n"));
                }
                Err(format!(
                    "the run after {count} messages was not answered (send: {r:?}; {} messages back, last {:?})",
                    got.len(),
                    got.last()
                ))
            }
        }
    }

    /// `count` connections each send headers and a few bytes of a body, then stall; meanwhile `print(1)` still runs.
    pub(super) async fn slow_bodies(&self, step: &Step) -> Result<(), String> {
        let mut conns = Vec::new();
        for _ in 0..step.count.unwrap_or(50) {
            let mut s = tokio::net::TcpStream::connect(&self.server.addr)
                .await
                .map_err(|e| e.to_string())?;
            let head = format!(
                "POST /execute HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {KEY_A}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"language\"",
                self.server.addr
            );
            s.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
            conns.push(s);
        }
        let started = Instant::now();
        self.print_one().await?;
        if started.elapsed() > Duration::from_secs(5) {
            return Err(format!("print(1) took {:?} beside stalled bodies", started.elapsed()));
        }
        drop(conns);
        Ok(())
    }
}
