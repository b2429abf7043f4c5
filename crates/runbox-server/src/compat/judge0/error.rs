//! Judge0's error shape (`{"error": "..."}`, or `{field: [messages]}` with 422) and the translation of runbox's
//! own errors into it, so that every Judge0 route refuses as Judge0 does.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::submission::{self, Errors};
use crate::error::ApiError;

/// An error in Judge0's shape.
#[derive(Debug)]
pub struct Judge0Error {
    pub(super) status: StatusCode,
    pub(super) body: Value,
    retry_after_s: Option<u64>,
}

impl Judge0Error {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Judge0Error {
        Judge0Error {
            status,
            body: json!({ "error": message.into() }),
            retry_after_s: None,
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Judge0Error {
        Judge0Error::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn invalid(errors: Errors) -> Judge0Error {
        Judge0Error {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!(errors),
            retry_after_s: None,
        }
    }

    pub(super) fn not_found() -> Judge0Error {
        Judge0Error::new(StatusCode::NOT_FOUND, "Not Found")
    }
}

/// Judge0's own words for output that is not UTF-8 without `base64_encoded=true`.
pub(super) const NOT_UTF8_ONE: &str =
    "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter";
pub(super) const NOT_UTF8_MANY: &str = "some attributes for one or more submissions cannot be converted to UTF-8, use \
                             base64_encoded=true query parameter";

/// runbox's own errors, told the Judge0 way: a field error becomes `{judge0_field: [message]}`.
impl From<ApiError> for Judge0Error {
    fn from(e: ApiError) -> Judge0Error {
        let field = e.details.as_ref().and_then(|d| d["field"].as_str()).map(str::to_string);
        let mut out = match field {
            Some(f) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
                let name = submission::judge0_field(&f).to_string();
                let message = e
                    .message
                    .strip_prefix(&format!("{f}: "))
                    .unwrap_or(&e.message)
                    .to_string();
                Judge0Error::invalid(Errors::from([(name, vec![message])]))
            }
            _ => Judge0Error::new(e.status, e.message),
        };
        out.retry_after_s = e.retry_after_s;
        out
    }
}

impl IntoResponse for Judge0Error {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names a scheme that would work (X-Auth-Token works too).
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

pub(super) type Judge0Result<T> = Result<T, Judge0Error>;

/// `{"error": "..."}` (or, with 422, `{field: [messages]}`).
#[derive(Serialize, ToSchema)]
pub struct Judge0ErrorBody {
    pub error: String,
}
