//! The Judge0 submission routes: create (queued, or run at once with `wait=true`), get, delete, and their batch
//! forms.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::error::{Judge0Error, Judge0ErrorBody, Judge0Result, NOT_UTF8_MANY, NOT_UTF8_ONE};
use super::extract::{fields, is_true, AnyJson, Judge0Caller, Params};
use super::submit::{load, prepare, queue, refuse_when_busy, stored, uuid4};
use super::{catalogue, record};
use crate::error::ApiError;
use crate::handlers::executions::{insert_refusal, job_quota};
use crate::jobs::ExtraRecord;
use crate::running::{admit, run_admitted};
use crate::state::AppState;

/// `{"token": "..."}`, or a whole record.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct Judge0Record(Value);

/// Judge0: create a submission (`wait=true` runs it at once and answers with its record).
#[utoipa::path(post, path = "/judge0/submissions", operation_id = "judge0CreateSubmission", tag = "judge0",
    params(("base64_encoded" = Option<bool>, Query, description = "text fields in base64"),
        ("wait" = Option<bool>, Query, description = "run now and answer with the record"),
        ("fields" = Option<String>, Query, description = "comma list or *")),
    request_body(content = Object, description = "A Judge0 submission",
        example = json!({"source_code": "print(6 * 7)", "language_id": 71})),
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 201, body = Judge0Record), (status = 400, body = Judge0ErrorBody),
        (status = 401, body = Judge0ErrorBody), (status = 413, body = Judge0ErrorBody),
        (status = 422, description = "{field: [messages]}", body = Object), (status = 429, body = Judge0ErrorBody),
        (status = 503, body = Judge0ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Judge0Caller(caller): Judge0Caller,
    Query(q): Params,
    AnyJson(value): AnyJson,
) -> Judge0Result<(StatusCode, Json<Value>)> {
    let base64 = is_true(&q, "base64_encoded")?;
    let fields = fields(&q)?;
    let (s, body) = prepare(&state, &value, base64)?;
    if !is_true(&q, "wait")? {
        refuse_when_busy(&state, 1).await?;
        let token = queue(&state, &caller, &s, &body).await?;
        state.wake_job_runner();
        return Ok((StatusCode::CREATED, Json(json!({ "token": token }))));
    }
    let (request, extra) = stored(&s, &body)?;
    // The record is kept like a queued submission's: a key at its quota is refused before anything runs.
    state
        .jobs
        .check_quota(&caller.owner, request.len(), &job_quota(&state))
        .await
        .map_err(|e| insert_refusal(&state, e))?;
    let req = body
        .clone()
        .into_request(&state.config.limits, state.engine.catalogue())?;
    let admitted = admit(&state, &caller, req).await?;
    let result = run_admitted(&state, admitted, None, |_| true).await?;
    let token = uuid4();
    // Kept within what an async record may store, like every other result.
    let mut result_value = serde_json::to_value(&result).map_err(ApiError::internal)?;
    let cap = state.config.async_result_bytes as usize;
    let (result_json, _) = crate::jobs::shrink_result(&mut result_value, cap).ok_or_else(|| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "result_too_large",
            format!("the result does not fit in the {cap} bytes a submission stores"),
        )
    })?;
    state
        .jobs
        .insert_with_extra(
            &ExtraRecord {
                id: &token,
                owner: &caller.owner,
                request: &request,
                extra: &extra,
                callback_url: s.callback_url.as_deref(),
                finished: Some((Some(&result_json), None)),
            },
            &job_quota(&state),
        )
        .await
        .map_err(|e| insert_refusal(&state, e))?;
    if let Some(url) = s.callback_url.clone() {
        // Judge0 calls back after a `wait=true` run too.
        let (state, owner, token) = (state.clone(), caller.owner.clone(), token.clone());
        tokio::spawn(async move {
            if let Ok(Some(view)) = state.jobs.get(&token, &owner).await {
                crate::callbacks::deliver(&state, &url, &owner, &view).await;
            }
        });
    }
    match load(&state, &caller.owner, &token, base64).await? {
        Some(Ok(all)) => Ok((StatusCode::CREATED, Json(record::select(all, &fields)))),
        Some(Err(record::NotUtf8)) => Ok((
            StatusCode::CREATED,
            Json(json!({"error": NOT_UTF8_ONE, "token": token})),
        )),
        None => Err(Judge0Error::not_found()),
    }
}

/// Judge0: a submission's record.
#[utoipa::path(get, path = "/judge0/submissions/{token}", operation_id = "judge0GetSubmission", tag = "judge0",
    params(("token" = String, Path), ("base64_encoded" = Option<bool>, Query), ("fields" = Option<String>, Query)),
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Judge0Record), (status = 400, body = Judge0ErrorBody),
        (status = 401, body = Judge0ErrorBody), (status = 404, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Judge0Caller(caller): Judge0Caller,
    Path(token): Path<String>,
    Query(q): Params,
) -> Judge0Result<Json<Value>> {
    let fields = fields(&q)?;
    match load(&state, &caller.owner, &token, is_true(&q, "base64_encoded")?).await? {
        Some(Ok(all)) => Ok(Json(record::select(all, &fields))),
        Some(Err(record::NotUtf8)) => Err(Judge0Error::bad_request(NOT_UTF8_ONE)),
        None => Err(Judge0Error::not_found()),
    }
}

/// Judge0: delete a finished submission; answers with its record (always base64, as Judge0 does).
#[utoipa::path(delete, path = "/judge0/submissions/{token}", operation_id = "judge0DeleteSubmission",
    tag = "judge0", params(("token" = String, Path), ("fields" = Option<String>, Query)),
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Judge0Record), (status = 400, body = Judge0ErrorBody),
        (status = 401, body = Judge0ErrorBody), (status = 404, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Judge0Caller(caller): Judge0Caller,
    Path(token): Path<String>,
    Query(q): Params,
) -> Judge0Result<Json<Value>> {
    let fields = fields(&q)?;
    let Some(Ok(all)) = load(&state, &caller.owner, &token, true).await? else {
        return Err(Judge0Error::not_found());
    };
    let status = all["status"].clone();
    if matches!(status["id"].as_u64(), Some(1) | Some(2)) {
        return Err(Judge0Error::bad_request(format!(
            "submission cannot be deleted because its status is {} ({})",
            status["id"],
            status["description"].as_str().unwrap_or("")
        )));
    }
    state
        .jobs
        .delete(&token, &caller.owner)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(record::select(all, &fields)))
}

fn batch_size_ok(n: usize) -> Judge0Result<()> {
    if n > catalogue::MAX_BATCH {
        return Err(Judge0Error::bad_request(format!(
            "number of submissions in a batch should be less than or equal to {}",
            catalogue::MAX_BATCH
        )));
    }
    if n == 0 {
        return Err(Judge0Error::bad_request(
            "there should be at least one submission in a batch",
        ));
    }
    Ok(())
}

/// Judge0: create several submissions; each entry is `{"token"}` or that entry's errors.
#[utoipa::path(post, path = "/judge0/submissions/batch", operation_id = "judge0CreateBatch", tag = "judge0",
    params(("base64_encoded" = Option<bool>, Query)),
    request_body(content = Object, description = "{\"submissions\": [submission, ...]}",
        example = json!({"submissions": [{"source_code": "print(1)", "language_id": 71},
            {"source_code": "print(2)", "language_id": 71}]})),
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 201, body = Vec<Object>), (status = 400, body = Judge0ErrorBody),
        (status = 401, body = Judge0ErrorBody), (status = 413, body = Judge0ErrorBody),
        (status = 422, body = Vec<Object>), (status = 429, body = Judge0ErrorBody),
        (status = 503, body = Judge0ErrorBody)))]
pub async fn create_batch(
    State(state): State<Arc<AppState>>,
    Judge0Caller(caller): Judge0Caller,
    Query(q): Params,
    AnyJson(value): AnyJson,
) -> Judge0Result<(StatusCode, Json<Vec<Value>>)> {
    let base64 = is_true(&q, "base64_encoded")?;
    let entries = value["submissions"].as_array().cloned().unwrap_or_default();
    batch_size_ok(entries.len())?;
    refuse_when_busy(&state, entries.len()).await?;
    let mut out = Vec::with_capacity(entries.len());
    let mut any = false;
    for entry in &entries {
        match prepare(&state, entry, base64) {
            Ok((s, body)) => {
                out.push(json!({ "token": queue(&state, &caller, &s, &body).await? }));
                any = true;
            }
            Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => out.push(e.body),
            Err(e) => return Err(e),
        }
    }
    state.wake_job_runner();
    let status = if any {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(out)))
}

/// `{"submissions": [record or null, ...]}`.
#[derive(Serialize, ToSchema)]
pub struct Judge0Batch {
    #[schema(value_type = Vec<Option<Object>>)]
    pub submissions: Vec<Value>,
}

/// Judge0: several submissions' records, by `tokens=a,b,c` (null for an unknown token).
#[utoipa::path(get, path = "/judge0/submissions/batch", operation_id = "judge0GetBatch", tag = "judge0",
    params(("tokens" = String, Query), ("base64_encoded" = Option<bool>, Query), ("fields" = Option<String>, Query)),
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Judge0Batch), (status = 400, body = Judge0ErrorBody),
        (status = 401, body = Judge0ErrorBody), (status = 429, body = Judge0ErrorBody)))]
pub async fn get_batch(
    State(state): State<Arc<AppState>>,
    Judge0Caller(caller): Judge0Caller,
    Query(q): Params,
) -> Judge0Result<Json<Judge0Batch>> {
    let fields = fields(&q)?;
    let base64 = is_true(&q, "base64_encoded")?;
    let tokens: Vec<&str> = q
        .get("tokens")
        .map_or("", |t| t.trim())
        .split(',')
        .filter(|t| !t.is_empty())
        .collect();
    batch_size_ok(tokens.len())?;
    let mut submissions = Vec::with_capacity(tokens.len());
    for token in tokens {
        submissions.push(match load(&state, &caller.owner, token, base64).await? {
            Some(Ok(all)) => record::select(all, &fields),
            Some(Err(record::NotUtf8)) => return Err(Judge0Error::bad_request(NOT_UTF8_MANY)),
            None => Value::Null,
        });
    }
    Ok(Json(Judge0Batch { submissions }))
}
