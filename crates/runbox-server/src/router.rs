//! Every route of the API in one place. [`ROUTES`] lists them for the test that checks each one is documented in
//! the OpenAPI document (and vice versa).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tracing::Instrument;

use crate::compat::{judge0, piston};
use crate::error::ApiError;
use crate::handlers::{compat, docs, execute, executions, files, info, sessions, stream, ws};
use crate::state::AppState;

/// (method, path) of every route, as the OpenAPI document spells it.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/health"),
    ("get", "/health/ready"),
    ("get", "/languages"),
    ("get", "/metrics"),
    ("post", "/execute"),
    ("post", "/execute/stream"),
    ("post", "/executions"),
    ("get", "/executions/{id}"),
    ("delete", "/executions/{id}"),
    ("get", "/ws"),
    ("post", "/process/interpreter/execute"),
    ("get", "/openapi.json"),
    ("get", "/redoc"),
    ("post", "/sessions"),
    ("get", "/sessions"),
    ("get", "/sessions/{id}"),
    ("delete", "/sessions/{id}"),
    ("post", "/sessions/{id}/execute"),
    ("post", "/sessions/{id}/execute/stream"),
    ("post", "/sessions/{id}/interrupt"),
    ("get", "/sessions/{id}/files"),
    ("put", "/sessions/{id}/files/{path}"),
    ("get", "/sessions/{id}/files/{path}"),
    ("delete", "/sessions/{id}/files/{path}"),
    ("get", "/api/v2/runtimes"),
    ("post", "/api/v2/execute"),
    ("get", "/api/v2/connect"),
    ("post", "/judge0/submissions"),
    ("get", "/judge0/submissions/{token}"),
    ("delete", "/judge0/submissions/{token}"),
    ("post", "/judge0/submissions/batch"),
    ("get", "/judge0/submissions/batch"),
    ("get", "/judge0/languages"),
    ("get", "/judge0/languages/all"),
    ("get", "/judge0/languages/{id}"),
    ("get", "/judge0/statuses"),
    ("get", "/judge0/about"),
    ("get", "/judge0/config_info"),
    ("get", "/judge0/version"),
];

/// Routes served but not listed in the document: aliases, the Swagger UI's own files, and `/mcp`, the Model Context
/// Protocol endpoint (JSON-RPC over streamable HTTP, described by the MCP specification and `docs/clients.md`, not
/// by OpenAPI; it takes the same keys as every route).
pub const UNDOCUMENTED_ALIASES: &[(&str, &str)] = &[
    ("post", "/execute_async"),
    ("get", "/docs"),
    ("post", "/mcp"),
    ("get", "/mcp"),
    ("delete", "/mcp"),
];

pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let cors = crate::origins::AllowList::new(&state.config.cors_origins).cors_layer();
    let host_guard = middleware::from_fn_with_state(state.clone(), crate::host_guard::check_host);
    let cluster_routing = middleware::from_fn_with_state(state.clone(), crate::cluster::forward::route);
    let api = Router::new()
        .route("/", get(info::root))
        .route("/health", get(info::health))
        .route("/health/ready", get(info::ready))
        .route("/languages", get(info::languages))
        .route("/metrics", get(info::metrics))
        .route("/execute", post(execute::execute))
        .route("/execute/stream", post(stream::execute_stream))
        .route("/executions", post(executions::create))
        .route("/execute_async", post(executions::create))
        .route("/executions/{id}", get(executions::get).delete(executions::cancel))
        .route("/ws", get(ws::socket))
        .route("/process/interpreter/execute", post(compat::interpreter_execute))
        .route("/openapi.json", get(docs::openapi_json))
        .route("/redoc", get(docs::redoc))
        .route("/sessions", post(sessions::create).get(sessions::list))
        .route("/sessions/{id}", get(sessions::get).delete(sessions::delete))
        .route("/sessions/{id}/execute", post(sessions::execute))
        .route("/sessions/{id}/execute/stream", post(sessions::execute_stream))
        .route("/sessions/{id}/interrupt", post(sessions::interrupt))
        .route("/sessions/{id}/files", get(files::list))
        .route(
            "/sessions/{id}/files/{*path}",
            get(files::download).put(files::upload).delete(files::delete),
        )
        .route("/api/v2/runtimes", get(piston::runtimes))
        .route("/api/v2/execute", post(piston::execute))
        .route("/api/v2/connect", get(piston::connect::connect))
        .route("/judge0/submissions", post(judge0::submissions::create))
        .route(
            "/judge0/submissions/batch",
            post(judge0::submissions::create_batch).get(judge0::submissions::get_batch),
        )
        .route(
            "/judge0/submissions/{token}",
            get(judge0::submissions::get).delete(judge0::submissions::delete),
        )
        .route("/judge0/languages", get(judge0::info::languages))
        .route("/judge0/languages/all", get(judge0::info::all_languages))
        .route("/judge0/languages/{id}", get(judge0::info::language))
        .route("/judge0/statuses", get(judge0::info::statuses))
        .route("/judge0/about", get(judge0::info::about))
        .route("/judge0/config_info", get(judge0::info::config_info))
        .route("/judge0/version", get(judge0::info::version))
        .merge(crate::mcp::routes(&state))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .with_state(state);
    // The validator badge would send the document to an external host: off, so the page stays offline.
    let swagger = utoipa_swagger_ui::SwaggerUi::new("/docs")
        .config(utoipa_swagger_ui::Config::from("/openapi.json").validator_url("none"));
    let mut app = api
        .merge(swagger)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cluster_routing)
        .layer(host_guard)
        .layer(middleware::from_fn(request_id));
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    // Outermost, so it sees every answer, including those made before the body was read.
    app.layer(middleware::from_fn(crate::unread_body::keep_connections_usable))
}

/// Gives every request an id (the caller's `X-Request-Id` when sane), logs it on every line of the request's
/// span, and returns it in the response.
async fn request_id(mut req: Request<axum::body::Body>, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(String::from)
        .unwrap_or_else(|| crate::jobs::random_id("req_")[..20].to_string());
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert("x-request-id", v);
    }
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let started = std::time::Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request done"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
