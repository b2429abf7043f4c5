//! The one error type of the API. Every failure becomes JSON `{code, message, details?}` with the right status;
//! 5xx details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use runbox_engine::files::FileError;
use runbox_engine::sessions::SessionError;
use runbox_engine::EngineError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code (`invalid_field`, `unauthorized`, `rate_limited`, ...).
    pub code: String,
    /// What went wrong, for humans.
    pub message: String,
    /// Extra structured detail, e.g. `{"field": "limits.memory_mb"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_s: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {message}"),
        )
        .with_details(serde_json::json!({ "field": field }))
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer KEY or X-API-Key: KEY)",
        )
    }

    pub fn rate_limited(code: &'static str, message: impl Into<String>, retry_after_s: u64) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message);
        e.retry_after_s = Some(retry_after_s.max(1));
        e
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        e.retry_after_s = Some(1);
        e
    }

    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %message, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; see the server log",
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match &e {
            EngineError::InvalidField { field, message } => ApiError::invalid_field(field, message.clone()),
            EngineError::UnknownLanguage(name) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_language",
                format!("unknown language {name:?}; GET /languages lists them"),
            )
            .with_details(serde_json::json!({ "field": "language" })),
            EngineError::LanguageUnavailable { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "language_unavailable", e.to_string())
                    .with_details(serde_json::json!({ "field": "language" }))
            }
            _ => ApiError::internal(e),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> ApiError {
        let code = e.code();
        match e {
            SessionError::NotFound => ApiError::not_found("session"),
            SessionError::FileNotFound => ApiError::not_found("file"),
            SessionError::Dead(_) | SessionError::Busy(_) => ApiError::new(StatusCode::CONFLICT, code, e.to_string()),
            SessionError::TooMany(_) => ApiError::rate_limited("too_many_sessions", e.to_string(), 10),
            SessionError::Unsupported(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
                .with_details(serde_json::json!({ "field": "language" })),
            SessionError::InvalidField { field, message } => ApiError::invalid_field(&field, message),
            SessionError::Engine(inner) => inner.into(),
            // A worker that did not come up (a loaded host, no cgroups, a runtime that will not start) is this
            // server's trouble, not the request's, and worth a retry: 503 with the reason, logged.
            SessionError::StartFailed(_) => {
                tracing::warn!(error = %e, "a session could not start");
                let mut answer = ApiError::unavailable(
                    code,
                    format!("{e}; GET /health/ready says whether this server can run code"),
                );
                answer.retry_after_s = Some(5);
                answer
            }
            SessionError::Io(_) => ApiError::internal(e),
            SessionError::QuotaExceeded(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, e.to_string()),
            SessionError::File(f) => f.into(),
            SessionError::KeyCapacity(m) => ApiError::rate_limited("key_capacity_exceeded", m, 1),
        }
    }
}

impl From<FileError> for ApiError {
    fn from(e: FileError) -> ApiError {
        match e {
            FileError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", m),
            FileError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{m} not found")),
            FileError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "file_conflict", m),
            FileError::Io(m) => ApiError::internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_string(),
            message: self.message,
            details: self.details,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names the scheme that would work.
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

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_whose_worker_did_not_start_is_a_retryable_503_not_an_internal_error() {
        let e: ApiError = SessionError::StartFailed("the worker did not become ready within 30 s".into()).into();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, "session_start_failed");
        assert_eq!(e.retry_after_s, Some(5));
        assert!(e.message.contains("within 30 s"), "{}", e.message);
    }
}
