//! CORS is off by default; with an allow-list, only the listed origins get CORS headers.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use runbox_engine::Jail;
use runbox_server::ServerConfig;
use tower::ServiceExt;

fn app(origins: &[&str]) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        cors_origins: origins.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let state = runbox_server::build_state(config, Jail::new("/nonexistent/runbox", vec![])).unwrap();
    (runbox_server::app(state), dir)
}

async fn allow_origin(app: &axum::Router, method: &str, origin: &str) -> (StatusCode, Option<String>) {
    let mut req = Request::builder()
        .method(method)
        .uri("/health")
        .header("origin", origin);
    if method == "OPTIONS" {
        req = req.header("access-control-request-method", "GET");
    }
    let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let header = resp
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string());
    (resp.status(), header)
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let (app, _dir) = app(&[]);
    assert_eq!(
        allow_origin(&app, "GET", "https://a.example").await,
        (StatusCode::OK, None)
    );
}

#[tokio::test]
async fn only_listed_origins_are_allowed() {
    let (app, _dir) = app(&["https://a.example"]);
    let (status, header) = allow_origin(&app, "OPTIONS", "https://a.example").await;
    assert!(status.is_success(), "{status}");
    assert_eq!(header.as_deref(), Some("https://a.example"));
    assert_eq!(allow_origin(&app, "GET", "https://evil.example").await.1, None);
}
