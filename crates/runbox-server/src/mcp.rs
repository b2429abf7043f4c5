//! `/mcp`: runbox's Model Context Protocol tools over streamable HTTP (`rmcp`'s service), behind the same checks
//! as every route: the `Origin` rule of `/ws` (a page may not drive a loopback server), then the API key (and its
//! rate limit). The authenticated [`Caller`] rides in the request's extensions to the tools, so sessions created
//! over MCP belong to the caller's key, exactly as over REST. The tools themselves live in `runbox-mcp`; this
//! backend only calls the same handlers and engine entry points the REST routes use.
//!
//! A server without keys answers only to loopback `Host` names (and `allowed_hosts`) on every route, `/mcp`
//! included (`host_guard`), so rmcp's own host check, which knows no `allowed_hosts`, is off.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use runbox_mcp::rmcp::model::Extensions;
use runbox_mcp::rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use runbox_mcp::rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use runbox_mcp::{Backend, Outcome, RunRequest, RunboxMcp, ToolFailure};

use runbox_engine::files::{self, FileEntry};
use runbox_engine::sessions::{CellResult, CreateSession, SessionInfo};
use runbox_engine::{CatalogueEntry, ExecutionResult};

use crate::api::ExecuteBody;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, JsonOrDefault};
use crate::handlers::{execute, sessions};
use crate::origins::AllowedOrigin;
use crate::state::AppState;

/// The path the MCP endpoint is served at.
pub const PATH: &str = "/mcp";

/// The tools' backend: this server's state, acting for the request's caller.
pub struct ServerBackend {
    state: Arc<AppState>,
}

fn failure(e: ApiError) -> ToolFailure {
    ToolFailure::new(e.code, e.message)
}

fn body_from<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> Outcome<T> {
    serde_json::from_value(json).map_err(|e| ToolFailure::new("invalid_arguments", e.to_string()))
}

fn file_failure(e: files::FileError) -> ToolFailure {
    failure(e.into())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Outcome<T> + Send + 'static) -> Outcome<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(failure(ApiError::internal(e))))
}

impl ServerBackend {
    fn workspace(&self, who: &Caller, id: &str) -> Outcome<(std::path::PathBuf, Option<u32>)> {
        self.state
            .sessions
            .workspace(&who.owner, id)
            .map_err(|e| failure(e.into()))
    }
}

impl Backend for ServerBackend {
    type Caller = Caller;

    fn caller(&self, extensions: &Extensions) -> Outcome<Caller> {
        extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| failure(ApiError::unauthorized()))
    }

    async fn execute(&self, who: &Caller, req: RunRequest) -> Outcome<ExecutionResult> {
        // Built as REST clients send it, so the body keeps up with the API's fields and their defaults.
        let body: ExecuteBody = body_from(serde_json::json!({
            "language": req.language, "code": req.code, "stdin": req.stdin, "timeout_ms": req.timeout_ms,
        }))?;
        let result = execute::execute(State(self.state.clone()), who.clone(), ApiJson(body)).await;
        result.map(|json| json.0).map_err(failure)
    }

    async fn languages(&self, _who: &Caller) -> Outcome<Vec<CatalogueEntry>> {
        Ok(self.state.languages().await)
    }

    async fn create_session(&self, who: &Caller, language: String) -> Outcome<SessionInfo> {
        let body = CreateSession {
            language,
            ..Default::default()
        };
        let result = sessions::create(State(self.state.clone()), who.clone(), JsonOrDefault(body)).await;
        result.map(|(_, json)| json.0).map_err(failure)
    }

    async fn run_cell(
        &self,
        who: &Caller,
        session: String,
        code: String,
        timeout_ms: Option<u64>,
    ) -> Outcome<CellResult> {
        let body: sessions::SessionExecuteBody =
            body_from(serde_json::json!({"code": code, "timeout_ms": timeout_ms}))?;
        let result = sessions::execute(State(self.state.clone()), who.clone(), Path(session), ApiJson(body)).await;
        result.map(|json| json.0).map_err(failure)
    }

    async fn close_session(&self, who: &Caller, session: String) -> Outcome<()> {
        let result = sessions::delete(State(self.state.clone()), who.clone(), Path(session)).await;
        result.map(|_| ()).map_err(failure)
    }

    async fn upload(&self, who: &Caller, session: String, path: String, content: Vec<u8>) -> Outcome<()> {
        // Through the sessions, as REST uploads go: charged to the session, its key and the server.
        let (sessions, owner) = (self.state.sessions.clone(), who.owner.clone());
        blocking(move || {
            sessions
                .upload(&owner, &session, &path, &content)
                .map_err(|e| failure(e.into()))
        })
        .await
    }

    async fn download(&self, who: &Caller, session: String, path: String, max_bytes: u64) -> Outcome<Vec<u8>> {
        let (root, _) = self.workspace(who, &session)?;
        blocking(move || files::read(&root, &path, max_bytes).map_err(file_failure)).await
    }

    async fn list_files(&self, who: &Caller, session: String, path: String) -> Outcome<Vec<FileEntry>> {
        let (root, _) = self.workspace(who, &session)?;
        blocking(move || files::list(&root, &path).map_err(file_failure)).await
    }
}

/// The `/mcp` route: rmcp's streamable HTTP service behind [`guard`].
pub fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    // The server's Host guard covers this route as every other (it knows `allowed_hosts`; rmcp's does not).
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(state.mcp_shutdown.clone())
        .with_max_request_body_bytes(state.config.body_limit_bytes)
        .disable_allowed_hosts();
    let backend = Arc::new(ServerBackend { state: state.clone() });
    let service = StreamableHttpService::new(
        move || Ok(RunboxMcp::new(backend.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route_service(PATH, service)
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
}

/// The checks every route makes, for a service that is not an axum handler: the page's origin, then the key.
async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, body) = request.into_parts();
    if let Err(e) = AllowedOrigin::from_request_parts(&mut parts, &state).await {
        return e.into_response();
    }
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    parts.extensions.insert(caller);
    let deleting = parts.method == axum::http::Method::DELETE;
    let mut response = next.run(Request::from_parts(parts, body)).await;
    // rmcp acknowledges a session's end with 202; the session is gone by then, and clients (the Python SDK among
    // them) expect 200 or 204 and warn otherwise.
    if deleting && response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
    }
    response
}
