//! Async executions: `POST /executions` queues a request and answers 202 at once; the worker runs it; `GET`
//! shows it, `DELETE` cancels it and removes its record. Records belong to the key that created them: other keys get
//! 404. A key holds a bounded number of records and bytes (429 `async_quota_exceeded` past them).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::ExecuteBody;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::jobs::JobView;
use crate::running::precheck;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Submitted {
    pub id: String,
    /// Always `queued`.
    pub status: String,
    /// Where to poll: `/executions/{id}`.
    pub location: String,
}

/// Submit code to run asynchronously. Also at `POST /execute_async`.
#[utoipa::path(post, path = "/executions", operation_id = "createExecution", tag = "executions",
    request_body(content = ExecuteBody, example = json!({"language": "python", "code": "print('hello')"})),
    responses(
        (status = 202, description = "Queued; poll the Location", body = Submitted,
            headers(("Location" = String, description = "/executions/{id}"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> ApiResult<impl IntoResponse> {
    if state.admission.is_draining() {
        return Err(ApiError::unavailable("draining", "the server is shutting down"));
    }
    if let Some(url) = &body.callback_url {
        crate::callbacks::check_callback_url(url, state.config.callback_allow_private)?;
    }
    let callback = body.callback_url.clone();
    let stored = serde_json::to_string(&body).map_err(ApiError::internal)?;
    precheck(
        &state,
        &body.into_request(&state.config.limits, state.engine.catalogue())?,
    )?;
    if state.jobs.count("queued").await >= state.config.max_async_queued as i64 {
        state.metrics.record_rejection("overloaded");
        return Err(ApiError::unavailable("overloaded", "the async queue is full"));
    }
    let id = state
        .jobs
        .insert_within(&caller.owner, &stored, callback.as_deref(), &job_quota(&state))
        .await
        .map_err(|e| insert_refusal(&state, e))?;
    state.wake_job_runner();
    let location = format!("/executions/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location.clone())],
        Json(Submitted {
            id,
            status: "queued".into(),
            location,
        }),
    ))
}

/// Status and, once done, the result of an async execution.
#[utoipa::path(get, path = "/executions/{id}", operation_id = "getExecution", tag = "executions",
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let view = state.jobs.get(&id, &caller.owner).await.map_err(ApiError::internal)?;
    view.map(Json).ok_or_else(|| ApiError::not_found("execution"))
}

/// Cancel an async execution (a queued one never runs, a running one is killed) and remove its record; the answer is
/// the record as it was removed.
#[utoipa::path(delete, path = "/executions/{id}", operation_id = "cancelExecution", tag = "executions",
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let before = state
        .jobs
        .cancel(&id, &caller.owner)
        .await
        .map_err(ApiError::internal)?;
    if before.is_none() {
        return Err(ApiError::not_found("execution"));
    }
    state.admission.cancel_job(&id);
    let view = state
        .jobs
        .delete(&id, &caller.owner)
        .await
        .map_err(ApiError::internal)?;
    view.map(Json).ok_or_else(|| ApiError::not_found("execution"))
}

/// The per-key quota of stored async records, from the configuration.
pub fn job_quota(state: &AppState) -> crate::jobs::JobQuota {
    crate::jobs::JobQuota {
        jobs: state.config.async_jobs_per_key,
        bytes: state.config.async_bytes_per_key,
        result_bytes: state.config.async_result_bytes,
    }
}

/// The answer to a record the store would not take: 429 `async_quota_exceeded` over the key's quota.
pub fn insert_refusal(state: &AppState, e: crate::jobs::InsertError) -> ApiError {
    match e {
        crate::jobs::InsertError::Quota(m) => {
            state.metrics.record_rejection("async_quota_exceeded");
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "async_quota_exceeded", m)
        }
        crate::jobs::InsertError::Store(e) if e.is_disk_full() => {
            tracing::error!(error = %e, data_dir = %state.config.data_dir.display(),
                "the data directory is full: async executions are refused until space is freed");
            state.metrics.record_rejection("storage_full");
            ApiError::unavailable(
                "storage_full",
                "the server's storage is full: async executions cannot be recorded now (runs without a record, \
                 POST /execute, still work); retry later",
            )
        }
        crate::jobs::InsertError::Store(e) if e.is_unavailable() => {
            tracing::error!(error = %e, "the job database cannot be reached: async executions are refused");
            state.metrics.record_rejection("store_unavailable");
            ApiError::unavailable(
                "store_unavailable",
                "the database of async executions cannot be reached now (runs without a record, POST /execute, \
                 still work); retry later",
            )
        }
        crate::jobs::InsertError::Store(e) => ApiError::internal(e),
    }
}
