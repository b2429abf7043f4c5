//! The API in process, without a socket: the router over a fresh state (its own temporary data directory), called
//! with `tower::ServiceExt::oneshot`. Every response is checked against the committed `openapi.json`, but for the
//! exchanges the document does not describe ([`Call::send_undocumented`]). The one in-process client of the
//! workspace's tests: build requests with [`TestApp::call`] rather than sending to a router by hand.
//!
//! Used by the test crates of `runbox-server` (no sandbox: [`no_jail`]) and `runbox` (which passes the real binary's
//! jail).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
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

pub struct TestApp {
    pub state: Arc<AppState>,
    router: axum::Router,
    _data_dir: tempfile::TempDir,
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
            _data_dir: dir,
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

    pub fn call(&self, method: &str, path: &str) -> Call {
        Call {
            router: self.router.clone(),
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

/// One request being built (it owns what it needs, so it can be sent from a spawned task).
pub struct Call {
    router: axum::Router,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Call {
    /// Authenticates with `Authorization: Bearer KEY`.
    pub fn key(self, key: &str) -> Self {
        self.header("authorization", &format!("Bearer {key}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn json(self, body: Value) -> Self {
        self.raw("application/json", body.to_string().into_bytes())
    }

    pub fn raw(mut self, content_type: &str, body: Vec<u8>) -> Self {
        if !content_type.is_empty() {
            self.headers.push(("content-type".into(), content_type.into()));
        }
        self.body = body;
        self
    }

    /// Sends the request and reads the whole response (30 s at most), checking it against the OpenAPI document.
    pub async fn send(self) -> Reply {
        let (method, path) = (self.method.clone(), self.path.clone());
        let reply = self.send_undocumented().await;
        reply.check_documented(&method, &path);
        reply
    }

    /// Sends the request and reads the whole response (30 s at most) without checking it against the OpenAPI
    /// document: for exchanges the document does not describe (CORS preflights, a WebSocket handshake, refusals
    /// made before any route, such as a keyless server's check of `Host`).
    pub async fn send_undocumented(self) -> Reply {
        let mut builder = Request::builder().method(self.method.as_str()).uri(self.path.as_str());
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        let request = builder.body(Body::from(self.body)).expect("a valid request");
        let what = format!("{} {}", self.method, self.path);
        let response = within(30, &what, self.router.oneshot(request))
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = within(30, &what, axum::body::to_bytes(response.into_body(), usize::MAX))
            .await
            .expect("read the body")
            .to_vec();
        Reply { status, headers, body }
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
