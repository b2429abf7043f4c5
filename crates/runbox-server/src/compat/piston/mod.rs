//! Piston v2's API under `/api/v2`: `GET /runtimes`, `POST /execute` and the `GET /connect` WebSocket
//! ([`connect`]), answering in Piston's shapes (stages with `output`, signal names, `RE|SG|TO|OL|EL|XX`
//! statuses; errors 400 `{"message"}`). Forgiving where the real clients are sloppy: the body is JSON whatever
//! its content type (`piston-client` posts `text/plain`), or a form (`pistonapi` posts `files` as a bare string
//! of code and a `timeout`); `version` may be absent or `*`, and `-1` means the default limit.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::running::{admit, run_admitted};
use crate::state::AppState;

pub mod connect;
pub mod wire;

use wire::{form_to_json, string, to_body, to_piston, version_matches};
pub use wire::{PistonExecuteBody, PistonFile, PistonResult, PistonStage};

/// An error in Piston's shape: `{"message"}`, 400 for anything the request got wrong.
#[derive(Debug)]
pub struct PistonError {
    status: StatusCode,
    message: String,
    retry_after_s: Option<u64>,
}

impl PistonError {
    fn bad(message: impl Into<String>) -> PistonError {
        PistonError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            retry_after_s: None,
        }
    }
}

impl From<ApiError> for PistonError {
    fn from(e: ApiError) -> PistonError {
        // Authentication, overload and size errors keep their status; every other refusal is Piston's 400.
        let status = match e.status.as_u16() {
            401 | 413 | 429 | 503 => e.status,
            s if s >= 500 => e.status,
            _ => StatusCode::BAD_REQUEST,
        };
        PistonError {
            status,
            message: e.message,
            retry_after_s: e.retry_after_s,
        }
    }
}

impl IntoResponse for PistonError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "message": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"runbox\""),
            );
        }
        if let Some(s) = self.retry_after_s {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// `{"message": "..."}`.
#[derive(Serialize, ToSchema)]
pub struct PistonMessage {
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct PistonRuntime {
    pub language: String,
    pub version: String,
    pub aliases: Vec<String>,
}

/// A body as JSON (whatever the content type) or, for `application/x-www-form-urlencoded` that is not a JSON
/// object, a form.
pub struct PistonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for PistonBody {
    type Rejection = PistonError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PistonError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        let bytes = Bytes::from_request(req, state).await.map_err(|r| PistonError {
            status: r.status(),
            message: if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "the request body is too large".into()
            } else {
                format!("cannot read the body: {r}")
            },
            retry_after_s: None,
        })?;
        // A JSON object sent as a form (`curl -d` does that) is still JSON.
        let looks_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if is_form && !looks_json {
            return Ok(PistonBody(form_to_json(&bytes)));
        }
        serde_json::from_slice(&bytes)
            .map(PistonBody)
            .map_err(|e| PistonError::bad(format!("the body is not JSON: {e}")))
    }
}

/// Piston: the runtimes this host can run.
#[utoipa::path(get, path = "/api/v2/runtimes", operation_id = "pistonRuntimes", tag = "piston",
    responses((status = 200, body = Vec<PistonRuntime>), (status = 401, body = PistonMessage),
        (status = 429, body = PistonMessage)))]
pub async fn runtimes(
    State(state): State<Arc<AppState>>,
    _caller: PistonCaller,
) -> Result<Json<Vec<PistonRuntime>>, PistonError> {
    let entries = state.languages().await;
    Ok(Json(
        entries
            .into_iter()
            .filter(|e| e.available)
            .map(|e| PistonRuntime {
                language: e.id,
                version: e.version.unwrap_or_else(|| "0.0.0".into()),
                aliases: e.aliases,
            })
            .collect(),
    ))
}

/// The caller of a Piston route (runbox's keys), refused in Piston's shape.
pub struct PistonCaller(pub Caller);

impl FromRequestParts<Arc<AppState>> for PistonCaller {
    type Rejection = PistonError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, PistonError> {
        Ok(PistonCaller(Caller::from_request_parts(parts, state).await?))
    }
}

/// Piston: run code once.
#[utoipa::path(post, path = "/api/v2/execute", operation_id = "pistonExecute", tag = "piston",
    request_body(content(
        (PistonExecuteBody = "application/json",
            example = json!({"language": "python", "version": "*", "files": [{"content": "print(6 * 7)"}]})),
        (PistonExecuteBody = "text/plain"),
        (Object = "application/x-www-form-urlencoded"))),
    responses((status = 200, body = PistonResult), (status = 400, body = PistonMessage),
        (status = 401, body = PistonMessage), (status = 413, body = PistonMessage),
        (status = 429, body = PistonMessage), (status = 503, body = PistonMessage)))]
pub async fn execute(
    State(state): State<Arc<AppState>>,
    PistonCaller(caller): PistonCaller,
    PistonBody(body): PistonBody,
) -> Result<Json<PistonResult>, PistonError> {
    let (req, installed) = prepare(&state, &body).await?;
    let admitted = admit(&state, &caller, req).await?;
    let result = run_admitted(&state, admitted, None, |_| true).await?;
    Ok(Json(to_piston(&result, &installed)))
}

/// A Piston request checked and translated: the engine request and the installed version of its language.
async fn prepare(state: &Arc<AppState>, body: &Value) -> Result<(runbox_engine::ExecuteRequest, String), PistonError> {
    let Some(language) = string(body, "language").filter(|l| !l.is_empty()) else {
        return Err(PistonError::bad("language is required as a string"));
    };
    let version = string(body, "version");
    let unknown = || {
        PistonError::bad(format!(
            "{language}-{} runtime is unknown",
            version.as_deref().unwrap_or("*")
        ))
    };
    let id = state.engine.resolve(&language).map_err(|_| unknown())?.id().to_string();
    let entries = state.languages().await;
    let entry = entries.iter().find(|e| e.id == id && e.available).ok_or_else(unknown)?;
    let installed = entry.version.clone().unwrap_or_else(|| "0.0.0".into());
    if !version_matches(&installed, version.as_deref()) {
        return Err(unknown());
    }
    let req = to_body(body, &id, &state.config.limits)?.into_request(&state.config.limits, state.engine.catalogue())?;
    crate::running::precheck(state, &req)?;
    Ok((req, installed))
}
