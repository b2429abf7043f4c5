//! A JSON body extractor whose failures have the API's error shape: 415 without a JSON content type, 413 over the
//! body limit, 400 for malformed JSON, 422 naming the field for well-formed JSON of the wrong shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is too large",
                )
            } else {
                ApiError::bad_request(format!("cannot read the body: {rejection}"))
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], but an empty body (with or without a content type) means `T::default()`: for routes whose
/// every field is optional, such as creating a session.
pub struct JsonOrDefault<T>(pub T);

impl<S, T> FromRequest<S> for JsonOrDefault<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared_empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        let no_type = req.headers().get(header::CONTENT_TYPE).is_none();
        if declared_empty || no_type {
            let bytes = Bytes::from_request(req, state)
                .await
                .map_err(|r| ApiError::bad_request(format!("cannot read the body: {r}")))?;
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                return Ok(JsonOrDefault(T::default()));
            }
            if no_type {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with Content-Type: application/json",
                ));
            }
            return parse(&bytes).map(JsonOrDefault);
        }
        ApiJson::<T>::from_request(req, state)
            .await
            .map(|ApiJson(v)| JsonOrDefault(v))
    }
}

/// Parses JSON bytes into `T` with the API's error mapping. Every body of the API is a JSON object: anything
/// else (an array, which serde would otherwise take as the fields in order, a string, a number) is refused.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Malformed JSON fails here and is reported below as such.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        refuse_arrays_as_objects(&value)?;
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::bad_request(format!("malformed JSON: {inner}")));
            }
            let message = inner.to_string();
            return Err(ApiError::invalid_field(
                &field_of(&e.path().to_string(), &message),
                message,
            ));
        }
    };
    de.end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Fields of the API's bodies that hold objects (`limits`) or arrays of objects (`files`, `tests`). serde would
/// take an array there as the fields in order; the document says object, so anything else is refused.
const OBJECT_FIELDS: &[&str] = &["limits"];
const OBJECT_LIST_FIELDS: &[&str] = &["files", "tests"];

fn refuse_arrays_as_objects(body: &serde_json::Value) -> Result<(), ApiError> {
    let Some(fields) = body.as_object() else {
        return Err(ApiError::invalid_field("body", "the body must be a JSON object"));
    };
    for name in OBJECT_FIELDS {
        if let Some(v) = fields.get(*name).filter(|v| v.is_array()) {
            return Err(ApiError::invalid_field(name, format!("must be an object, not {v}")));
        }
    }
    for name in OBJECT_LIST_FIELDS {
        let items = fields
            .get(*name)
            .and_then(|v| v.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(i) = items.iter().position(|v| v.is_array()) {
            return Err(ApiError::invalid_field(
                &format!("{name}[{i}]"),
                "must be an object, not an array",
            ));
        }
    }
    Ok(())
}

/// The field a deserialization error is about. A missing field is reported at the object that lacks it, so its
/// name comes from the message (`missing field `code``); `body` only when nothing narrower is known.
fn field_of(path: &str, message: &str) -> String {
    let at_root = path == "." || path.is_empty();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    match (missing, at_root) {
        (Some(name), true) => name.to_string(),
        (Some(name), false) => format!("{path}.{name}"),
        (None, true) => "body".to_string(),
        (None, false) => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        code: String,
        #[serde(default)]
        files: Vec<Inner>,
    }

    fn field(json: &str) -> String {
        let e = parse::<Outer>(json.as_bytes()).unwrap_err();
        e.details.unwrap()["field"].as_str().unwrap().to_string()
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(field("{}"), "code");
        assert_eq!(field(r#"{"code": "x", "files": [{}]}"#), "files[0].name");
    }

    #[test]
    fn a_wrong_type_names_its_field_and_a_wrong_body_names_the_body() {
        assert_eq!(field(r#"{"code": 1}"#), "code");
        assert_eq!(field(r#"{"code": "x", "files": [{"name": 2}]}"#), "files[0].name");
        assert_eq!(field("[]"), "body");
    }
}
