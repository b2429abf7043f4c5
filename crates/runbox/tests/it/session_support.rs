//! Helpers for the session tests: the HTTP API in process (the router over a fresh state with its own temporary
//! data directory, called with `tower::ServiceExt::oneshot`), sandboxes run by this crate's binary, and ways to
//! find a session's processes on the host. JSON responses of the session routes are checked against the committed
//! `openapi.json`.
#![allow(dead_code)]

pub use runbox_testkit::openapi as openapi_check;
use runbox_testkit::procs;
pub use runbox_testkit::wait::within;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use base64::Engine as _;
use futures_util::StreamExt;
use runbox_engine::Jail;
use runbox_server::{AppState, ServerConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

pub const KEY_A: &str = "session-key-a-0123456789";
pub const KEY_B: &str = "session-key-b-0123456789";

/// The environment variable every test session carries, so that its processes can be found on the host.
pub const MARK_VAR: &str = "RUNBOX_TEST_SESSION_MARK";

pub fn jail() -> Jail {
    Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()])
}

/// A mark no other session of any test process uses.
pub fn unique_mark() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "m{}-{}-{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct Api {
    pub state: Arc<AppState>,
    router: axum::Router,
    /// Key sent when a call names none.
    pub default_key: Option<String>,
    pub data_dir: tempfile::TempDir,
}

impl Api {
    /// The API over a fresh state; `configure` changes the default configuration.
    pub fn new(configure: impl FnOnce(&mut ServerConfig)) -> Api {
        let dir = tempfile::tempdir().expect("create a data directory");
        let mut config = ServerConfig {
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        configure(&mut config);
        config.validate().expect("a valid test configuration");
        let state = runbox_server::build_state(config, jail()).expect("build the state");
        Api {
            router: runbox_server::app(state.clone()),
            state,
            default_key: None,
            data_dir: dir,
        }
    }

    /// The API with the default configuration.
    pub fn plain() -> Api {
        Api::new(|_| {})
    }

    /// The API with keys `a` ([`KEY_A`], the default) and `b` ([`KEY_B`]).
    pub fn with_two_keys(configure: impl FnOnce(&mut ServerConfig)) -> Api {
        let mut api = Api::new(|c| {
            c.api_keys = vec![key("a", KEY_A), key("b", KEY_B)];
            configure(c);
        });
        api.default_key = Some(KEY_A.into());
        api
    }

    pub fn call(&self, method: &str, path: &str) -> Call {
        Call {
            router: self.router.clone(),
            method: method.into(),
            path: path.into(),
            key: self.default_key.clone(),
            content_type: None,
            body: Vec::new(),
        }
    }

    pub fn get(&self, path: &str) -> Call {
        self.call("GET", path)
    }

    pub fn post(&self, path: &str, body: Value) -> Call {
        self.call("POST", path).json(body)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.call("DELETE", path)
    }

    pub fn put(&self, path: &str, bytes: Vec<u8>) -> Call {
        self.call("PUT", path).raw("application/octet-stream", bytes)
    }

    /// Creates a session (`body` is the request; a test mark is added to its `env`) and returns its id and mark.
    pub async fn create_marked(&self, key: Option<&str>, mut body: Value) -> (String, String) {
        let mark = unique_mark();
        body["env"][MARK_VAR] = json!(mark);
        let mut call = self.post("/sessions", body);
        if let Some(k) = key {
            call = call.key(k);
        }
        let info = call.send().await.expect(201);
        assert_eq!(info["state"], "idle", "a new session is idle: {info}");
        (info["id"].as_str().expect("an id").to_string(), mark)
    }

    /// Creates a session of `language` with the default key and returns its id.
    pub async fn create(&self, language: &str) -> String {
        self.create_marked(None, json!({ "language": language })).await.0
    }

    /// Runs a cell and returns its result (asserting 200).
    pub async fn exec(&self, id: &str, code: &str) -> Value {
        self.exec_body(id, json!({ "code": code })).await.expect(200)
    }

    /// Runs a cell, asserting it ended `ok`, and returns its result.
    #[track_caller]
    pub fn exec_ok<'a>(&'a self, id: &'a str, code: &'a str) -> impl Future<Output = Value> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let r = self.exec(id, code).await;
            assert_eq!(r["status"], "ok", "cell {code:?} failed (called at {caller}): {r:#}");
            r
        }
    }

    pub async fn exec_body(&self, id: &str, body: Value) -> Reply {
        self.post(&format!("/sessions/{id}/execute"), body).send().await
    }

    pub async fn info(&self, id: &str) -> Value {
        self.get(&format!("/sessions/{id}")).send().await.expect(200)
    }
}

pub fn key(name: &str, secret: &str) -> runbox_server::config::ApiKeyConfig {
    runbox_server::config::ApiKeyConfig {
        name: name.into(),
        key: secret.into(),
        rate_limit_per_minute: None,
        max_concurrent: None,
    }
}

/// One request being built; it owns what it needs, so it can be sent from a spawned task.
pub struct Call {
    router: axum::Router,
    method: String,
    path: String,
    key: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Call {
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sends no key at all.
    pub fn without_key(mut self) -> Self {
        self.key = None;
        self
    }

    pub fn json(self, body: Value) -> Self {
        self.raw("application/json", body.to_string().into_bytes())
    }

    pub fn raw(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.content_type = Some(content_type.into());
        self.body = body;
        self
    }

    fn request(&self) -> Request<Body> {
        let mut builder = Request::builder().method(self.method.as_str()).uri(self.path.as_str());
        if let Some(k) = &self.key {
            builder = builder.header("authorization", format!("Bearer {k}"));
        }
        if let Some(ct) = &self.content_type {
            builder = builder.header("content-type", ct);
        }
        builder.body(Body::from(self.body.clone())).expect("a valid request")
    }

    /// Sends the request and reads the whole response (90 s at most).
    pub async fn send(self) -> Reply {
        let what = format!("{} {}", self.method, self.path);
        let response = within(90, &what, self.router.clone().oneshot(self.request()))
            .await
            .expect("the router is infallible");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = within(90, &what, axum::body::to_bytes(response.into_body(), usize::MAX))
            .await
            .expect("read the body")
            .to_vec();
        let reply = Reply { status, headers, body };
        reply.check_documented(&self.method, &self.path);
        reply
    }

    /// Sends the request and returns the Server-Sent Events of the response as they arrive, each with the time
    /// it arrived, until the stream ends (`secs` at most).
    pub async fn stream_events(self, secs: u64) -> (u16, Vec<(Instant, String, Value)>) {
        let what = format!("{} {}", self.method, self.path);
        let response = within(secs, &what, self.router.clone().oneshot(self.request()))
            .await
            .expect("the router is infallible");
        let status = response.status().as_u16();
        let mut stream = response.into_body().into_data_stream();
        let mut events = Vec::new();
        let mut pending = String::new();
        within(secs, &what, async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.expect("read the stream");
                let at = Instant::now();
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find("\n\n") {
                    let block: String = pending.drain(..end + 2).collect();
                    if let Some((name, data)) = runbox_testkit::sse::event(&block) {
                        events.push((at, name, data));
                    }
                }
            }
        })
        .await;
        (status, events)
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// Asserts the response is what `openapi.json` documents. The document's path templates have one segment per
    /// parameter, so a nested file path is checked as a one-segment one; a download's content type comes from the
    /// file's extension and is checked by the tests themselves.
    #[track_caller]
    fn check_documented(&self, method: &str, path: &str) {
        let path = path.split('?').next().unwrap_or(path);
        let mut checked = path.to_string();
        if let Some(at) = path.find("/files/") {
            if method == "GET" && self.status == 200 {
                return;
            }
            checked = format!("{}/files/file", &path[..at]);
        }
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        if let Err(e) = openapi_check::committed().check_response(method, &checked, self.status, &headers, &self.body) {
            panic!("response does not match openapi.json: {e}\nbody: {}", self.text());
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self.json()
    }

    /// Asserts the status and returns the raw body.
    #[track_caller]
    pub fn expect_bytes(&self, status: u16) -> Vec<u8> {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self.body.clone()
    }

    /// Asserts an error response with this status and code, and a message; returns the body.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["code"], code, "unexpected error code: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {body}"
        );
        body
    }
}

/// The data of the first output of `mime` in a cell result's `outputs`.
pub fn output_of<'a>(result: &'a Value, mime: &str) -> Option<&'a str> {
    result["outputs"]
        .as_array()?
        .iter()
        .find(|o| o["mime_type"] == mime)
        .and_then(|o| o["data"].as_str())
}

/// Decodes base64 PNG data and checks it is a real, non-trivial PNG; returns its bytes.
#[track_caller]
pub fn assert_png(data: &str) -> Vec<u8> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap_or_else(|e| panic!("image/png is not base64 ({e})"));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &bytes[..bytes.len().min(16)]
    );
    assert!(bytes.len() > 2000, "a plot is more than {} bytes of PNG", bytes.len());
    assert_eq!(&bytes[12..16], b"IHDR", "the first chunk of a PNG is IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width >= 100 && height >= 100, "a plot of {width}x{height} pixels");
    assert!(bytes.ends_with(b"IEND\xaeB`\x82"), "a PNG ends with IEND");
    bytes
}

/// Live (not zombie) host processes whose environment holds `MARK_VAR=mark`: the session's worker and whatever
/// it started.
pub fn processes_with_mark(mark: &str) -> Vec<String> {
    let needle = format!("{MARK_VAR}={mark}");
    procs::processes()
        .into_iter()
        .map(|(pid, _, _)| pid)
        .filter(|&pid| procs::has_env(pid, &needle) && procs::is_live(pid))
        .map(|pid| format!("{pid}: {}", procs::cmdline(pid)))
        .collect()
}

/// Live `runbox jail` processes this test process started (session sandboxes are its children), as pids. Other
/// tests of this process start jails too: a test finds its own by their marked workers.
pub fn my_jails() -> Vec<String> {
    procs::children_of(std::process::id())
        .into_iter()
        .filter(|&pid| procs::args(pid).iter().any(|a| a == b"jail") && procs::is_live(pid))
        .map(|pid| pid.to_string())
        .collect()
}

/// Children of `parent` that have exited but were never waited for.
pub fn zombie_children_of(parent: u32) -> Vec<String> {
    procs::children_of(parent)
        .into_iter()
        .filter(|&pid| procs::state(pid) == Some('Z'))
        .map(|pid| pid.to_string())
        .collect()
}

/// Waits until no live process carries `mark`.
pub async fn wait_processes_gone(mark: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = processes_with_mark(mark);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the session's processes are still there after {secs} s: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
