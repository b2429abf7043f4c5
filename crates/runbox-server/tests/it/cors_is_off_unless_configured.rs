//! CORS is off by default; with an allow-list, only the listed origins get CORS headers, and `*` allows every
//! origin. Answers expose the headers a front end needs and preflights are cached. The same list guards `/ws`.
//!
//! CORS answers (preflights above all) are not in `openapi.json`, so these exchanges are sent unchecked.

use axum::http::{HeaderMap, StatusCode};
use runbox_testkit::app::{no_jail, TestApp};

fn app(origins: &[&str]) -> TestApp {
    TestApp::new(no_jail(), |c| {
        c.cors_origins = origins.iter().map(|s| s.to_string()).collect()
    })
}

async fn allow_origin(app: &TestApp, method: &str, origin: &str) -> (StatusCode, Option<String>) {
    let mut req = app.call(method, "/health").header("origin", origin);
    if method == "OPTIONS" {
        req = req.header("access-control-request-method", "GET");
    }
    let resp = req.send_undocumented().await;
    let header = resp
        .headers
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string());
    (resp.status, header)
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let app = app(&[]);
    assert_eq!(
        allow_origin(&app, "GET", "https://a.example").await,
        (StatusCode::OK, None)
    );
}

#[tokio::test]
async fn only_listed_origins_are_allowed() {
    let app = app(&["https://a.example"]);
    let (status, header) = allow_origin(&app, "OPTIONS", "https://a.example").await;
    assert!(status.is_success(), "{status}");
    assert_eq!(header.as_deref(), Some("https://a.example"));
    assert_eq!(allow_origin(&app, "GET", "https://evil.example").await.1, None);
}

async fn preflight(app: &TestApp, origin: &str) -> (StatusCode, HeaderMap) {
    let resp = app
        .call("OPTIONS", "/execute")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization, x-api-key, x-request-id",
        )
        .send_undocumented()
        .await;
    (resp.status, resp.headers)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_wildcard_allows_every_origin_without_credentials() {
    // This configuration used to panic when the router was built.
    let app = app(&["*"]);
    let (status, header) = allow_origin(&app, "GET", "https://anyone.example").await;
    assert_eq!((status, header.as_deref()), (StatusCode::OK, Some("*")));
    let (status, headers) = preflight(&app, "https://anyone.example").await;
    assert!(status.is_success(), "{status}");
    assert_eq!(self::header(&headers, "access-control-allow-origin"), "*");
    assert_eq!(self::header(&headers, "access-control-allow-credentials"), "");
}

#[tokio::test]
async fn preflights_are_cached_and_allow_the_api_headers() {
    let app = app(&["https://a.example"]);
    let (status, headers) = preflight(&app, "https://a.example").await;
    assert!(status.is_success(), "{status}");
    assert_eq!(header(&headers, "access-control-allow-origin"), "https://a.example");
    assert_eq!(header(&headers, "access-control-max-age"), "7200");
    let allowed = header(&headers, "access-control-allow-headers").to_ascii_lowercase();
    for h in ["content-type", "authorization", "x-api-key", "x-request-id"] {
        assert!(allowed.contains(h), "{h} not in {allowed:?}");
    }
    let methods = header(&headers, "access-control-allow-methods");
    for m in ["GET", "POST", "PUT", "DELETE"] {
        assert!(methods.contains(m), "{m} not in {methods:?}");
    }
    let (_, headers) = preflight(&app, "https://evil.example").await;
    assert_eq!(header(&headers, "access-control-allow-origin"), "");
}

#[tokio::test]
async fn answers_expose_location_retry_after_and_the_request_id() {
    for origins in [&["https://a.example"][..], &["*"][..]] {
        let app = app(origins);
        let resp = app
            .get("/health")
            .header("origin", "https://a.example")
            .send_undocumented()
            .await;
        let exposed = header(&resp.headers, "access-control-expose-headers").to_ascii_lowercase();
        for h in ["location", "retry-after", "x-request-id"] {
            assert!(exposed.contains(h), "{origins:?}: {h} not in {exposed:?}");
        }
    }
}

#[tokio::test]
async fn listed_origins_match_as_browsers_spell_them() {
    let app = app(&["HTTPS://A.Example:443"]);
    assert_eq!(
        allow_origin(&app, "GET", "https://a.example").await.1.as_deref(),
        Some("https://a.example")
    );
}

async fn websocket_handshake(app: &TestApp, origin: &str) -> (StatusCode, String) {
    let resp = app
        .get("/ws")
        .header("host", "127.0.0.1:8080")
        .header("origin", origin)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send_undocumented()
        .await;
    (resp.status, resp.text())
}

#[tokio::test]
async fn a_websocket_from_a_foreign_page_is_refused_with_json() {
    let app = app(&["https://a.example"]);
    let (status, body) = websocket_handshake(&app, "https://evil.example").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "origin_not_allowed", "{body}");
    // Listed, same-origin and loopback pages get past the check (this in-process request cannot upgrade).
    for page in ["https://a.example", "http://127.0.0.1:8080", "http://localhost:3000"] {
        let (status, body) = websocket_handshake(&app, page).await;
        assert_ne!(status, StatusCode::FORBIDDEN, "{page}: {body}");
    }
}

/// Without keys, a page on another site cannot make the server run code with a "simple" request (no preflight):
/// the Judge0 and Piston routes read text/plain and form bodies as their clients send them, so the Origin decides.
#[tokio::test]
async fn a_keyless_server_refuses_writes_from_foreign_pages_but_serves_its_own_and_loopback_pages() {
    let app = app(&["https://front.example"]);
    let post = |path: &'static str, origin: &'static str, content_type: &'static str, body: &'static str| {
        let req = app
            .call("POST", path)
            .header("host", "127.0.0.1:8080")
            .header("origin", origin)
            .raw(content_type, body.as_bytes().to_vec());
        async move {
            let resp = req.send_undocumented().await;
            (resp.status, resp.text())
        }
    };
    let judge0 = r#"{"source_code": "print(1)", "language_id": 71}"#;
    for (path, content_type, body) in [
        ("/judge0/submissions", "text/plain", judge0),
        (
            "/api/v2/execute",
            "application/x-www-form-urlencoded",
            "language=python&files=print(1)",
        ),
        ("/sessions", "text/plain", ""),
    ] {
        let (status, text) = post(path, "https://evil.example", content_type, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {text}");
        assert!(text.contains("origin_not_allowed"), "{path}: {text}");
        for allowed in [
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "https://front.example",
        ] {
            let (status, text) = post(path, allowed, content_type, body).await;
            assert_ne!(status, StatusCode::FORBIDDEN, "{path} from {allowed}: {text}");
        }
    }
    // Reading stays open (a foreign page cannot read the answer without CORS anyway).
    assert_eq!(
        allow_origin(&app, "GET", "https://evil.example").await.0,
        StatusCode::OK
    );
}
