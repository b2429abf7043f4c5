//! Stateful sessions: create, list, inspect, delete, execute (plain or streamed), interrupt. Sessions belong to
//! the key that created them; other keys get 404.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;
use utoipa::ToSchema;

use runbox_engine::sessions::{CellResult, CreateSession, SessionInfo};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::events::CellTranslator;
use crate::extract::{ApiJson, JsonOrDefault};
use crate::state::AppState;

/// A cell to run in a session.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionExecuteBody {
    #[schema(example = "x = 41\nx + 1")]
    pub code: String,
    /// Time limit of this cell; past it the cell is interrupted (status `timeout`) and the session survives.
    /// Bounds of the default configuration (the operator sets the maximum). The environment is set when the
    /// session is created, not per cell.
    #[serde(default, deserialize_with = "runbox_engine::whole::opt_u64")]
    #[schema(minimum = 1, maximum = 60_000)]
    pub timeout_ms: Option<u64>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)
}

/// Start a session: a sandbox with a persistent interpreter. An empty body starts a default Python session.
#[utoipa::path(post, path = "/sessions", operation_id = "createSession", tag = "sessions",
    request_body(content = CreateSession, example = json!({"language": "python"})),
    responses((status = 201, body = SessionInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonOrDefault(body): JsonOrDefault<CreateSession>,
) -> ApiResult<(StatusCode, Json<SessionInfo>)> {
    if state.admission.is_draining() {
        return Err(ApiError::unavailable("draining", "the server is shutting down"));
    }
    let sessions = state.sessions.clone();
    let info = blocking(move || sessions.create(&caller.owner, &body)).await??;
    Ok((StatusCode::CREATED, Json(info)))
}

/// The caller's sessions.
#[utoipa::path(get, path = "/sessions", operation_id = "listSessions", tag = "sessions",
    responses((status = 200, body = Vec<SessionInfo>), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>, caller: Caller) -> ApiResult<Json<Vec<SessionInfo>>> {
    let sessions = state.sessions.clone();
    Ok(Json(blocking(move || sessions.list(&caller.owner)).await?))
}

/// One session: state, times, executions, memory in use.
#[utoipa::path(get, path = "/sessions/{id}", operation_id = "getSession", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionInfo>> {
    Ok(Json(state.sessions.info(&caller.owner, &id)?))
}

/// End a session and free everything it holds.
#[utoipa::path(delete, path = "/sessions/{id}", operation_id = "deleteSession", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.sessions.delete(&caller.owner, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Interrupt the running cell (SIGINT): the session and its state survive.
#[utoipa::path(post, path = "/sessions/{id}/interrupt", operation_id = "interruptSession", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn interrupt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionInfo>> {
    Ok(Json(state.sessions.interrupt(&caller.owner, &id)?))
}

/// Run a cell in the session; state persists between cells.
#[utoipa::path(post, path = "/sessions/{id}/execute", operation_id = "sessionExecute", tag = "sessions",
    params(("id" = String, Path, description = "Session id")), request_body(content = SessionExecuteBody, example = json!({"code": "x = 41\nx + 1"})),
    responses((status = 200, body = CellResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "session_dead or session_busy", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn execute(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SessionExecuteBody>,
) -> ApiResult<Json<CellResult>> {
    let sessions = state.sessions.clone();
    let started = std::time::Instant::now();
    let result =
        blocking(move || sessions.execute(&caller.owner, &id, &body.code, body.timeout_ms, &mut |_| {})).await??;
    state
        .metrics
        .record_cell(result.status, started.elapsed().as_secs_f64());
    Ok(Json(result))
}

/// Run a cell and stream `stdout`, `stderr` and `display` events, then one `result` (or `error`).
#[utoipa::path(post, path = "/sessions/{id}/execute/stream", operation_id = "sessionExecuteStream", tag = "sessions",
    params(("id" = String, Path, description = "Session id")), request_body(content = SessionExecuteBody, example = json!({"code": "x = 41\nx + 1"})),
    responses((status = 200, description = "text/event-stream: `stdout`/`stderr` (`{data, base64?}`), `display` \
        (`{mime_type, data}`), then `result` (the cell result) or `error` (a failure after the stream started). \
        The request is checked first: a bad one gets an error status, not a stream.", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn execute_stream(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SessionExecuteBody>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // Everything that can be refused at once is refused before the stream starts, with a status.
    state.sessions.check_cell(&caller.owner, &id, body.timeout_ms)?;
    let (tx, rx) = mpsc::unbounded_channel::<Event>();
    let sessions = state.sessions.clone();
    tokio::task::spawn_blocking(move || {
        let mut translator = CellTranslator::default();
        let events = tx.clone();
        let result = sessions.execute(&caller.owner, &id, &body.code, body.timeout_ms, &mut |ev| {
            if let Some((name, data)) = translator.translate(ev) {
                let _ = events.send(Event::default().event(name).json_data(data).unwrap_or_default());
            }
        });
        let last = match result {
            Ok(r) => Event::default().event("result").json_data(r),
            Err(e) => {
                let e = ApiError::from(e);
                Event::default().event("error").json_data(ErrorBody {
                    code: e.code.into(),
                    message: e.message,
                    details: e.details,
                })
            }
        };
        let _ = tx.send(last.unwrap_or_default());
    });
    Ok(Sse::new(UnboundedReceiverStream::new(rx).map(Ok)).keep_alive(KeepAlive::default()))
}
