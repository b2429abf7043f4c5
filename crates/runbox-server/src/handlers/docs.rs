//! The API's own documentation, served from the binary: the OpenAPI document, Swagger UI (vendored by
//! `utoipa-swagger-ui`) at `/docs`, and a self-contained reference page at `/redoc`.

use axum::http::header;
use axum::response::{Html, IntoResponse};

use crate::openapi::document;

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "info", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document().to_pretty_json().unwrap_or_default(),
    )
}

/// A readable reference of the API, rendered in the browser from `/openapi.json` with no external assets.
#[utoipa::path(get, path = "/redoc", operation_id = "reference", tag = "info", security(()),
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
pub async fn redoc() -> Html<&'static str> {
    Html(include_str!("reference.html"))
}
