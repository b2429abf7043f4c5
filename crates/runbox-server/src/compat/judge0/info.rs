//! The Judge0 routes that describe the server: languages (with Judge0 CE 1.13.1's ids), statuses, `/about`,
//! `/config_info` and `/version`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::catalogue;
use super::error::{Judge0Error, Judge0ErrorBody, Judge0Result};
use super::extract::Judge0Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Judge0Language {
    pub id: i64,
    pub name: String,
}

/// Judge0: the languages this server can run, with Judge0 CE 1.13.1's ids.
#[utoipa::path(get, path = "/judge0/languages", operation_id = "judge0Languages", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Vec<Judge0Language>), (status = 401, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn languages(State(state): State<Arc<AppState>>, _caller: Judge0Caller) -> Json<Vec<Judge0Language>> {
    let entries = state.languages().await;
    Json(
        catalogue::available(&entries)
            .into_iter()
            .map(|(id, name, _)| Judge0Language { id, name })
            .collect(),
    )
}

/// Judge0: every language with `is_archived` (none is).
#[utoipa::path(get, path = "/judge0/languages/all", operation_id = "judge0AllLanguages", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Vec<Object>), (status = 401, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn all_languages(State(state): State<Arc<AppState>>, _caller: Judge0Caller) -> Json<Vec<Value>> {
    let entries = state.languages().await;
    Json(
        catalogue::available(&entries)
            .into_iter()
            .map(|(id, name, _)| json!({"id": id, "name": name, "is_archived": false}))
            .collect(),
    )
}

/// Judge0: one language, `{id, name, is_archived, source_file, compile_cmd, run_cmd}`.
#[utoipa::path(get, path = "/judge0/languages/{id}", operation_id = "judge0Language", tag = "judge0",
    params(("id" = i64, Path)), security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Object), (status = 401, body = Judge0ErrorBody),
        (status = 404, body = Judge0ErrorBody), (status = 429, body = Judge0ErrorBody)))]
pub async fn language(
    State(state): State<Arc<AppState>>,
    _caller: Judge0Caller,
    Path(id): Path<String>,
) -> Judge0Result<Json<Value>> {
    let id: i64 = id.parse().map_err(|_| Judge0Error::not_found())?;
    let entries = state.languages().await;
    let (id, name, entry) = catalogue::available(&entries)
        .into_iter()
        .find(|(i, _, _)| *i == id)
        .ok_or_else(Judge0Error::not_found)?;
    let lang = state.engine.resolve(&entry.id).map_err(ApiError::from)?;
    let cmd = |argv: &[String]| argv.join(" ");
    Ok(Json(json!({
        "id": id,
        "name": name,
        "is_archived": false,
        "source_file": lang.source_file(),
        "compile_cmd": lang.compile().map(|c| cmd(c.argv_template())),
        "run_cmd": cmd(lang.run().argv_template()),
    })))
}

#[derive(Serialize, ToSchema)]
pub struct Judge0Status {
    pub id: u8,
    pub description: String,
}

/// Judge0: the statuses, ids 1 to 14.
#[utoipa::path(get, path = "/judge0/statuses", operation_id = "judge0Statuses", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Vec<Judge0Status>), (status = 401, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn statuses(_caller: Judge0Caller) -> Json<Vec<Judge0Status>> {
    Json(
        catalogue::STATUSES
            .iter()
            .map(|(id, d)| Judge0Status {
                id: *id,
                description: d.to_string(),
            })
            .collect(),
    )
}

#[derive(Serialize, ToSchema)]
pub struct Judge0About {
    pub version: String,
    pub homepage: String,
    pub source_code: String,
    pub maintainer: String,
}

/// Judge0: `{version, homepage, source_code, maintainer}`; the version is the Judge0 one runbox behaves as.
#[utoipa::path(get, path = "/judge0/about", operation_id = "judge0About", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Judge0About), (status = 401, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn about(_caller: Judge0Caller) -> Json<Value> {
    Json(catalogue::about())
}

/// Judge0: the configuration, every key Judge0 CE 1.13.1 has, in Judge0's units.
#[utoipa::path(get, path = "/judge0/config_info", operation_id = "judge0ConfigInfo", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Object), (status = 401, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn config_info(State(state): State<Arc<AppState>>, _caller: Judge0Caller) -> Json<Value> {
    Json(catalogue::config_info(
        &state.config.limits,
        state.config.max_async_queued,
    ))
}

/// Judge0: the version, as plain text.
#[utoipa::path(get, path = "/judge0/version", operation_id = "judge0Version", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, description = "e.g. 1.13.1", content_type = "text/plain"),
        (status = 401, body = Judge0ErrorBody), (status = 429, body = Judge0ErrorBody)))]
pub async fn version(_caller: Judge0Caller) -> &'static str {
    catalogue::VERSION
}
