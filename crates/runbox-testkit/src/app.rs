//! The API in process, without a socket: the router over a fresh state (its own temporary data directory), called
//! with `tower::ServiceExt::oneshot`. Every response is checked against the committed `openapi.json`, but for the
//! exchanges the document does not describe ([`Call::send_undocumented`]). The one in-process client of the
//! workspace's tests: build requests with [`TestApp::call`] rather than sending to a router by hand.
//!
//! A call waits 30 s at most unless the app ([`TestApp::with_timeout`]) or the call ([`Call::timeout`]) says
//! otherwise; it sends the app's default key ([`TestApp::with_default_key`]) unless it names its own or none
//! ([`Call::without_key`]); a streamed response can be read event by event as it arrives ([`Call::stream_events`]).
//!
//! Used by the test crates of `runbox-server` (no sandbox: [`no_jail`]) and `runbox` (which passes the real binary's
//! jail).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use futures_util::StreamExt;
use runbox_engine::Jail;
use runbox_server::{AppState, ServerConfig};
use serde_json::Value;
use tower::ServiceExt;

use crate::openapi;
pub use crate::openapi as openapi_check;
pub use crate::sse::events as sse_events;
pub use crate::wait::{wait_until, within};

pub const KEY_A: &str = "key-a-0123456789abcdef";
pub const KEY_B: &str = "key-b-0123456789abcdef";

/// A jail that cannot start: for tests whose requests never reach a sandbox.
pub fn no_jail() -> Jail {
    Jail::new("/nonexistent/runbox", vec!["jail".into()])
}

/// Two keys, `a` and `b`, with no limits of their own.
pub fn two_keys(config: &mut ServerConfig) {
    config.api_keys = vec![key("a", KEY_A), key("b", KEY_B)];
}

pub fn key(name: &str, secret: &str) -> runbox_server::config::ApiKeyConfig {
    runbox_server::config::ApiKeyConfig {
        name: name.into(),
        key: secret.into(),
        rate_limit_per_minute: None,
        max_concurrent: None,
    }
}

/// How long a call waits for its response, unless told otherwise.
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// One Server-Sent Event as read from a stream: when it arrived, its name and its JSON data.
pub type TimedEvent = (Instant, String, Value);

pub struct TestApp {
    pub state: Arc<AppState>,
    router: axum::Router,
    data_dir: tempfile::TempDir,
    /// Key sent by a call that names none.
    default_key: Option<String>,
    /// What a call waits at most, in seconds, unless it says otherwise.
    timeout_secs: u64,
}

impl TestApp {
    /// A state over a fresh data directory, with the default configuration changed by `configure`.
    pub fn new(jail: Jail, configure: impl FnOnce(&mut ServerConfig)) -> TestApp {
        let dir = tempfile::tempdir().expect("create a data directory");
        let mut config = ServerConfig {
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        configure(&mut config);
        config.validate().expect("a valid test configuration");
        let state = runbox_server::build_state(config, jail).expect("build the state");
        TestApp {
            router: runbox_server::app(state.clone()),
            state,
            data_dir: dir,
            default_key: None,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
        }
    }

    /// Every call sends `Authorization: Bearer KEY` unless it names another key or none.
    pub fn with_default_key(mut self, key: &str) -> TestApp {
        self.default_key = Some(key.into());
        self
    }

    /// Every call waits `secs` seconds at most (for the response, and again for its body) unless it says otherwise.
    pub fn with_timeout(mut self, secs: u64) -> TestApp {
        self.timeout_secs = secs;
        self
    }

    /// The state's data directory (removed when the app is dropped).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
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

    /// A PUT of raw bytes (`application/octet-stream`).
    pub fn put(&self, path: &str, bytes: Vec<u8>) -> Call {
        self.call("PUT", path).raw("application/octet-stream", bytes)
    }

    pub fn call(&self, method: &str, path: &str) -> Call {
        Call {
            router: self.router.clone(),
            method: method.into(),
            path: path.into(),
            key: self.default_key.clone(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_secs: self.timeout_secs,
        }
    }
}

/// One request being built (it owns what it needs, so it can be sent from a spawned task).
pub struct Call {
    router: axum::Router,
    method: String,
    path: String,
    /// Sent as `Authorization: Bearer KEY`, unless an `authorization` header is given explicitly.
    key: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_secs: u64,
}

impl Call {
    /// Authenticates with `Authorization: Bearer KEY` (instead of the app's default key).
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sends no key, not even the app's default one.
    pub fn without_key(mut self) -> Self {
        self.key = None;
        self
    }

    /// Waits `secs` seconds at most for the response, and again for its body or stream.
    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout_secs = secs;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn json(self, body: Value) -> Self {
        self.raw("application/json", body.to_string().into_bytes())
    }

    /// The body and its content type (none if empty), replacing any given before.
    pub fn raw(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        if !content_type.is_empty() {
            self.headers.push(("content-type".into(), content_type.into()));
        }
        self.body = body;
        self
    }

    /// Sends the request and reads the whole response, checking it against the OpenAPI document.
    pub async fn send(self) -> Reply {
        let (method, path) = (self.method.clone(), self.path.clone());
        let reply = self.send_undocumented().await;
        reply.check_documented(&method, &path);
        reply
    }

    /// Sends the request and reads the whole response without checking it against the OpenAPI document: for
    /// exchanges the document does not describe (CORS preflights, a WebSocket handshake, refusals made before any
    /// route, such as a keyless server's check of `Host`).
    pub async fn send_undocumented(self) -> Reply {
        let (secs, what) = (self.timeout_secs, self.what());
        let response = self.respond().await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = within(secs, &what, axum::body::to_bytes(response.into_body(), usize::MAX))
            .await
            .expect("read the body")
            .to_vec();
        Reply { status, headers, body }
    }

    /// Sends the request and reads the Server-Sent Events of the response as they arrive, each with the time it
    /// arrived, until the stream ends; the whole response is then checked against the OpenAPI document. A response
    /// that is not a stream (a refusal) gives no events. The call's timeout bounds the wait for the response and,
    /// again, the whole stream.
    pub async fn stream_events(self) -> (StatusCode, Vec<TimedEvent>) {
        let (secs, what) = (self.timeout_secs, self.what());
        let (method, path) = (self.method.clone(), self.path.clone());
        let response = self.respond().await;
        let status = response.status();
        let headers = response.headers().clone();
        let mut stream = response.into_body().into_data_stream();
        let mut events = Vec::new();
        let mut body = Vec::new();
        within(secs, &what, async {
            // Bytes not yet ending a block; a block ends at a blank line, which a chunk may split.
            let mut pending = String::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.expect("read the stream");
                let at = Instant::now();
                body.extend_from_slice(&chunk);
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find("\n\n") {
                    let block: String = pending.drain(..end + 2).collect();
                    if let Some((name, data)) = crate::sse::event(&block) {
                        events.push((at, name, data));
                    }
                }
            }
        })
        .await;
        Reply { status, headers, body }.check_documented(&method, &path);
        (status, events)
    }

    fn what(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Sends the request; the response's head, its body not yet read.
    async fn respond(self) -> axum::response::Response {
        let what = self.what();
        let mut builder = Request::builder().method(self.method.as_str()).uri(self.path.as_str());
        let explicit = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if let Some(k) = self.key.as_deref().filter(|_| !explicit) {
            builder = builder.header("authorization", format!("Bearer {k}"));
        }
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        let request = builder.body(Body::from(self.body)).expect("a valid request");
        within(self.timeout_secs, &what, self.router.oneshot(request))
            .await
            .expect("the router is infallible")
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// Asserts the response is what `openapi.json` documents for the route. Swagger UI's files are not in the
    /// document; `/execute_async` is documented as `/executions`.
    #[track_caller]
    pub fn check_documented(&self, method: &str, path: &str) {
        // `/mcp` speaks JSON-RPC (the MCP specification describes it, not the OpenAPI document).
        if path == "/docs" || path.starts_with("/docs/") || path == "/mcp" {
            return;
        }
        let path = if path == "/execute_async" { "/executions" } else { path };
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        if let Err(e) = openapi::committed().check_response(method, path, self.status.as_u16(), &headers, &self.body) {
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
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text());
        self.json()
    }

    /// Asserts the status and returns the body as it is (a download, an empty 204).
    #[track_caller]
    pub fn expect_bytes(&self, status: u16) -> Vec<u8> {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text());
        self.body.clone()
    }

    /// Asserts an error response: the status, and a JSON body `{code, message}` with this code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text());
        let body = self.json();
        assert_eq!(body["code"], code, "unexpected error code: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {body}"
        );
        body
    }

    /// Asserts a 422 naming `field` in `details.field`.
    #[track_caller]
    pub fn expect_invalid(&self, code: &str, field: &str) -> Value {
        let body = self.expect_error(422, code);
        assert_eq!(body["details"]["field"], field, "422 names the field: {body}");
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_default_key_is_sent_unless_a_call_names_another_or_none() {
        let app = TestApp::new(no_jail(), two_keys).with_default_key("not-a-key-0123456789");
        app.get("/sessions").send().await.expect_error(401, "unauthorized");
        app.get("/sessions").key(KEY_B).send().await.expect(200);
        let app = TestApp::new(no_jail(), two_keys).with_default_key(KEY_A);
        app.get("/sessions").send().await.expect(200);
        app.get("/sessions")
            .without_key()
            .send()
            .await
            .expect_error(401, "unauthorized");
        // An explicit Authorization header is the only one sent.
        app.get("/sessions")
            .header("authorization", "Bearer not-a-key-0123456789")
            .send()
            .await
            .expect_error(401, "unauthorized");
    }

    #[tokio::test]
    async fn a_stream_is_read_event_by_event_and_a_refusal_gives_no_events() {
        let app = TestApp::new(no_jail(), |_| {});
        // Without a sandbox the run fails, after the stream started (today) or before it (a refusal).
        let (status, events) = app
            .post(
                "/execute/stream",
                serde_json::json!({"language": "python", "code": "1"}),
            )
            .timeout(20)
            .stream_events()
            .await;
        if status == 200 {
            let last = events.last().map(|(_, name, _)| name.as_str());
            assert!(matches!(last, Some("result" | "error")), "{events:?}");
        } else {
            assert!(events.is_empty(), "{status}: {events:?}");
        }
        let (status, events) = app
            .post(
                "/execute/stream",
                serde_json::json!({"language": "no-such-language", "code": "1"}),
            )
            .stream_events()
            .await;
        assert!(status.is_client_error() && events.is_empty(), "{status}: {events:?}");
    }
}
