//! The real `runbox serve` binary on a loopback port, driven over HTTP and WebSocket. Every HTTP response is
//! checked against the committed `openapi.json`. A server still running when its [`Server`] is dropped is killed.
//! What starts the server takes the binary's path (see the crate's comment); the `runbox` tests pass theirs once,
//! in their own `live_server` module.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::openapi;
pub use crate::openapi as openapi_check;
pub use crate::procs::{processes, still_running};
pub use crate::sse::event as sse_event;
pub use crate::wait::within;

pub const KEY_A: &str = "key-a-0123456789abcdef";
pub const KEY_B: &str = "key-b-0123456789abcdef";

/// `--set` value configuring two keys, `a` and `b`.
pub fn two_keys_setting() -> String {
    format!("api_keys=[{{name = \"a\", key = \"{KEY_A}\"}}, {{name = \"b\", key = \"{KEY_B}\"}}]")
}

/// Collects a child's stderr into a string, a line at a time, on a thread of its own (so the child never blocks on a
/// full pipe); what it wrote so far is in the returned string.
pub fn capture_log(stderr: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    capture_log_into(stderr, log.clone());
    log
}

/// [`capture_log`] appending to an existing log (a process started again keeps one log across its lives).
pub fn capture_log_into(stderr: impl std::io::Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
}

/// The first line a child prints on stdout (a server's `runbox listening on …`), or None after `timeout`. The rest
/// of its stdout is drained on the same thread, so the child never blocks on a full pipe.
pub fn first_line(stdout: impl std::io::Read + Send + 'static, timeout: Duration) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut stdout = BufReader::new(stdout);
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
    rx.recv_timeout(timeout).ok()
}

pub struct Server {
    child: Child,
    pub base: String,
    pub addr: String,
    pub data_dir: PathBuf,
    /// Key sent by [`Server::get`], [`Server::post`] and [`Server::delete`].
    pub key: Option<String>,
    log: Arc<Mutex<String>>,
    client: reqwest::Client,
}

/// How to start `runbox serve`: which binary, and how to start it. `Server::start` and its siblings in the
/// `runbox` tests fill it in.
pub struct Start<'a> {
    /// The `runbox` binary.
    pub binary: &'a Path,
    pub data_dir: &'a Path,
    /// `--set` settings.
    pub sets: &'a [&'a str],
    /// Variables besides `RUNBOX_LOG` (no other variable of the test reaches the server).
    pub env: &'a [(&'a str, &'a str)],
    /// In a process group of its own (which [`Server::kill_group`] kills as a whole).
    pub own_group: bool,
    /// A wrapper command that ends by exec'ing its arguments (the binary comes last), e.g. `unshare` to give the
    /// server a mount namespace of its own.
    pub wrapper: &'a [&'a str],
}

impl Server {
    /// Starts `runbox serve` on a free loopback port, and waits for its address.
    pub fn launch(how: Start<'_>) -> Server {
        let Start {
            binary,
            data_dir,
            sets,
            env,
            own_group,
            wrapper,
        } = how;
        let mut cmd = match wrapper.split_first() {
            None => Command::new(binary),
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(binary);
                cmd
            }
        };
        if own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for s in sets {
            cmd.args(["--set", s]);
        }
        // The test's own environment must not configure the server.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RUNBOX_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("NO_COLOR").env("RUNBOX_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start runbox serve");

        let log = capture_log(child.stderr.take().unwrap());
        let line = match first_line(child.stdout.take().unwrap(), Duration::from_secs(30)) {
            Some(line) => line,
            None => {
                let _ = child.kill();
                panic!(
                    "runbox serve printed no address within 30 s; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        let Some(addr) = line.trim().strip_prefix("runbox listening on http://") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first line {line:?}; log:\n{}", log.lock().unwrap());
        };
        let addr = addr.to_string();
        assert!(addr.starts_with("127.0.0.1:"), "listens on loopback only: {addr}");
        Server {
            child,
            base: format!("http://{addr}"),
            addr,
            data_dir: data_dir.to_path_buf(),
            key: None,
            log,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub fn with_key(mut self, key: &str) -> Server {
        self.key = Some(key.to_string());
        self
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the server's log holds `needle`, failing the test after `secs` seconds. The log is read from
    /// stderr by a thread of its own, which can lag behind what the server already answered on its socket.
    pub async fn expect_log(&self, needle: &str, secs: u64) {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        while !self.log().contains(needle) {
            if std::time::Instant::now() >= until {
                panic!(
                    "the server did not log {needle:?} within {secs} s; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.call("GET", path, self.key.as_deref(), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.call("POST", path, self.key.as_deref(), Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.call("DELETE", path, self.key.as_deref(), None).await
    }

    /// One request; the response is read whole and checked against the OpenAPI document.
    pub async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> Response {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let what = format!("{method} {path}");
        let response = within(60, &what, req.send())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}\nserver log:\n{}", self.log()));
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = within(60, &what, response.bytes())
            .await
            .expect("read the body")
            .to_vec();
        let path_for_doc = if path == "/execute_async" { "/executions" } else { path };
        if let Err(e) = openapi::committed().check_response(method, path_for_doc, status, &headers, &body) {
            panic!(
                "response does not match openapi.json: {e}\nbody: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Response { status, headers, body }
    }

    /// Polls an async execution until `done` says it is, returning its last view.
    pub async fn poll_job(&self, location: &str, key: Option<&str>, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let view = self.call("GET", location, key, None).await.expect(200);
            if done(&view) {
                return view;
            }
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "{location} not done within {secs} s: {view}\nserver log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits (20 s at most) for the server to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "send SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within 20 s of SIGTERM; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server outright (SIGKILL) and reaps it: nothing of its own shutdown runs.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// SIGKILLs the server's whole process group (it must have been started in a group of its own:
    /// [`Start::own_group`]), as a service manager or a terminal's ^C-then-kill would, and reaps the server.
    pub fn kill_group(&mut self) {
        // SAFETY: kill(2) on the process group our own unreaped child leads.
        let rc = unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        assert_eq!(rc, 0, "SIGKILL the server's process group");
        self.child.wait().expect("reap the server");
    }

    /// Every process descending from the server now, as (pid, start time) so a reused pid is not mistaken for it.
    pub fn descendants(&self) -> Vec<(u32, u64)> {
        let procs = processes();
        let mut found = Vec::new();
        let mut frontier = vec![self.child.id()];
        while let Some(parent) = frontier.pop() {
            for &(pid, ppid, start) in &procs {
                if ppid == parent {
                    found.push((pid, start));
                    frontier.push(pid);
                }
            }
        }
        found
    }

    pub async fn websocket(&self, key: Option<&str>) -> Ws {
        let auth = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        match self.try_websocket(&headers).await {
            Ok((ws, _)) => ws,
            Err((status, body)) => panic!("WebSocket handshake refused with {status}: {body}"),
        }
    }

    /// A handshake with these headers: the socket and the subprotocol the server chose, or the refusal's status
    /// and JSON body.
    pub async fn try_websocket(&self, headers: &[(&str, &str)]) -> Result<(Ws, Option<String>), (u16, Value)> {
        let mut request = format!("ws://{}/ws", self.addr).into_client_request().unwrap();
        for (k, v) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName = k.parse().unwrap();
            request.headers_mut().insert(name, v.parse().unwrap());
        }
        match within(10, "the WebSocket handshake", tokio_tungstenite::connect_async(request)).await {
            Ok((stream, response)) => {
                assert_eq!(response.status().as_u16(), 101);
                let protocol = response
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap().to_string());
                let ws = Ws {
                    stream,
                    seen: Vec::new(),
                    log: self.log.clone(),
                };
                Ok((ws, protocol))
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response.body().clone().unwrap_or_default();
                let json = serde_json::from_slice(&body)
                    .unwrap_or_else(|e| panic!("a refused handshake answers JSON ({e}): {body:?}"));
                Err((response.status().as_u16(), json))
            }
            Err(e) => panic!("WebSocket handshake: {e}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that failed midway: stop the server the polite way first, so that it kills its sandboxes.
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub use crate::procs::named as processes_named;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self.json()
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        body
    }
}

/// A WebSocket to `/ws`; remembers every message it has read.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    pub seen: Vec<Value>,
    log: Arc<Mutex<String>>,
}

impl Ws {
    pub async fn send(&mut self, message: Value) {
        within(
            10,
            "a WebSocket send",
            self.stream.send(Message::text(message.to_string())),
        )
        .await
        .expect("send on the WebSocket");
    }

    /// The next JSON message, or None once the socket has ended (closed, reset or failed).
    pub async fn try_next(&mut self) -> Option<Value> {
        loop {
            match self.stream.next().await? {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(&text).expect("messages are JSON");
                    self.seen.push(value.clone());
                    return Some(value);
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next message (`secs` at most).
    pub async fn next(&mut self, secs: u64) -> Value {
        loop {
            let message = match tokio::time::timeout(Duration::from_secs(secs), self.stream.next()).await {
                Ok(Some(Ok(m))) => m,
                other => panic!(
                    "no message within {secs} s ({other:?}); seen: {:?}\nserver log:\n{}",
                    self.seen,
                    self.log.lock().unwrap()
                ),
            };
            let Message::Text(text) = message else { continue };
            let value: Value = serde_json::from_str(&text).expect("messages are JSON");
            self.seen.push(value.clone());
            return value;
        }
    }

    /// Reads messages until one is `kind` for run `id`, which it returns (`secs` at most).
    pub async fn until(&mut self, id: &str, kind: &str, secs: u64) -> Value {
        let what = format!("a {kind} message for run {id}");
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(other) => panic!(
                    "the WebSocket ended before {what}: {other:?}; seen: {:?}\nserver log:\n{}",
                    self.seen,
                    self.log.lock().unwrap()
                ),
                Err(_) => panic!(
                    "no {what} within {secs} s; seen: {:?}\nserver log:\n{}",
                    self.seen,
                    self.log.lock().unwrap()
                ),
            };
            let Message::Text(text) = message else { continue };
            let value: Value = serde_json::from_str(&text).expect("messages are JSON");
            self.seen.push(value.clone());
            if value["id"] == id && value["type"] == kind {
                return value;
            }
        }
    }

    /// Everything of `kind` seen for run `id`, concatenated (`data` of output messages).
    pub fn output(&self, id: &str, kind: &str) -> String {
        self.seen
            .iter()
            .filter(|m| m["id"] == id && m["type"] == kind)
            .filter_map(|m| m["data"].as_str())
            .collect()
    }

    pub async fn close(mut self) {
        let _ = within(5, "closing the WebSocket", self.stream.close(None)).await;
    }
}
