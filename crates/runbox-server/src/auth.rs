//! Who is calling. With no keys configured everyone is the anonymous owner (and the server listens on loopback
//! only); with keys, every route but `/health` and the documentation (`/openapi.json`, `/docs`, `/redoc`) needs
//! `Authorization: Bearer KEY` or `X-API-Key: KEY`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// The owner of everything made without a key (keyless mode); no key may be named so.
pub const ANONYMOUS_OWNER: &str = "anonymous";

/// The authenticated caller. Async jobs (and sessions) belong to `owner` and are invisible to other owners.
#[derive(Debug, Clone)]
pub struct Caller {
    pub owner: String,
    /// Index of the caller's key in the server's key list.
    pub key: Option<usize>,
}

/// The secret a request presents, if any.
pub fn presented_key(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(token) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(token.trim().to_string());
        }
    }
    parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        if !state.auth_required() {
            return Ok(Caller {
                owner: ANONYMOUS_OWNER.into(),
                key: None,
            });
        }
        let Some(index) = presented_key(parts).and_then(|k| state.key_index(&k)) else {
            state.metrics.record_rejection("unauthorized");
            return Err(ApiError::unauthorized());
        };
        state.check_rate(Some(index))?;
        Ok(Caller {
            owner: state.keys[index].config.name.clone(),
            key: Some(index),
        })
    }
}
