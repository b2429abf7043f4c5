//! What a Judge0 route reads from its request, as Judge0 reads it: the caller (runbox's keys, also as
//! `X-Auth-Token`), a JSON body whatever its content type, and the boolean and `fields` query parameters.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::error::{Judge0Error, Judge0Result};
use super::record;
use crate::auth::Caller;
use crate::state::AppState;

/// The caller of a Judge0 route: runbox's keys, also presented as Judge0's `X-Auth-Token`.
pub struct Judge0Caller(pub Caller);

impl FromRequestParts<Arc<AppState>> for Judge0Caller {
    type Rejection = Judge0Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Judge0Error> {
        let tokens: Vec<HeaderValue> = parts.headers.get_all("x-auth-token").iter().cloned().collect();
        for t in tokens {
            parts.headers.append("x-api-key", t);
        }
        Caller::from_request_parts(parts, state)
            .await
            .map(Judge0Caller)
            .map_err(|e| {
                let mut j = Judge0Error::from(e);
                if j.status == StatusCode::UNAUTHORIZED {
                    j.body = json!({"error": "a valid API key is required (X-Auth-Token, X-API-Key or Authorization: Bearer)"});
                }
                j
            })
    }
}

/// A JSON body whatever its content type (Rails reads JSON from any client that sends it).
pub struct AnyJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for AnyJson {
    type Rejection = Judge0Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Judge0Error> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Judge0Error::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large")
            } else {
                Judge0Error::bad_request(format!("cannot read the body: {r}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(AnyJson(json!({})));
        }
        serde_json::from_slice(&bytes)
            .map(AnyJson)
            .map_err(|e| Judge0Error::bad_request(format!("malformed JSON: {e}")))
    }
}

pub(super) type Params = Query<HashMap<String, String>>;

/// A boolean query parameter: `true` or `false` (absent is false). Judge0 quietly takes anything else as false; a
/// typo there would silently change what comes back (plain text instead of base64, a token instead of a record),
/// so it is refused instead.
pub(super) fn is_true(q: &HashMap<String, String>, name: &str) -> Judge0Result<bool> {
    match q.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" || v.is_empty() => Ok(false),
        Some(v) => Err(Judge0Error::bad_request(format!(
            "{name} must be true or false, not {v:?}"
        ))),
    }
}

pub(super) fn fields(q: &HashMap<String, String>) -> Judge0Result<Vec<&'static str>> {
    record::requested_fields(q.get("fields").map(String::as_str))
        .map_err(|invalid| Judge0Error::bad_request(format!("invalid fields: [{}]", invalid.join(", "))))
}
