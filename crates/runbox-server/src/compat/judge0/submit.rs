//! From a Judge0 submission to a runbox async execution and back: a submission is checked as Judge0 and then as
//! runbox would check it, queued under a UUID token with its Judge0 fields kept beside it, and a stored one is
//! rendered as Judge0's record (also for the callback Judge0 sends).

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;

use super::error::{Judge0Error, Judge0Result};
use super::submission::Submission;
use super::{catalogue, record};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::executions::{insert_refusal, job_quota};
use crate::jobs::ExtraRecord;
use crate::running::precheck;
use crate::state::AppState;

/// A version-4 UUID from the kernel's randomness (the SDK types tokens as UUID4).
pub fn uuid4() -> String {
    let mut hex: Vec<u8> = crate::jobs::random_id("").into_bytes();
    hex[12] = b'4';
    let variant = u8::from_str_radix(std::str::from_utf8(&hex[16..17]).unwrap_or("8"), 16).unwrap_or(8);
    hex[16] = b"89ab"[usize::from(variant & 3)];
    let h = String::from_utf8(hex).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Checks one submission as Judge0 and then as runbox (caps, language installed) would.
pub(super) fn prepare(
    state: &AppState,
    value: &Value,
    base64: bool,
) -> Result<(Submission, crate::api::ExecuteBody), Judge0Error> {
    let s = Submission::parse(value, base64, &state.config.limits).map_err(Judge0Error::invalid)?;
    if let Some(url) = &s.callback_url {
        // The same policy as runbox's own callbacks: http(s), and no private address unless the operator allows.
        crate::callbacks::check_callback_url(url, state.config.callback_allow_private)?;
    }
    let body = s.to_body();
    let req = body
        .clone()
        .into_request(&state.config.limits, state.engine.catalogue())?;
    precheck(state, &req)?;
    Ok((s, body))
}

pub(super) fn stored(s: &Submission, body: &crate::api::ExecuteBody) -> Judge0Result<(String, String)> {
    let request = serde_json::to_string(body).map_err(ApiError::internal)?;
    let extra = serde_json::to_string(s).map_err(ApiError::internal)?;
    Ok((request, extra))
}

pub(super) async fn refuse_when_busy(state: &AppState, adding: usize) -> Judge0Result<()> {
    if state.admission.is_draining() {
        return Err(Judge0Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ));
    }
    if state.jobs.count("queued").await + adding as i64 > state.config.max_async_queued as i64 {
        state.metrics.record_rejection("overloaded");
        return Err(Judge0Error::new(StatusCode::SERVICE_UNAVAILABLE, "queue is full"));
    }
    Ok(())
}

/// Queues a prepared submission; returns its token.
pub(super) async fn queue(
    state: &AppState,
    caller: &Caller,
    s: &Submission,
    body: &crate::api::ExecuteBody,
) -> Judge0Result<String> {
    let (request, extra) = stored(s, body)?;
    let token = uuid4();
    state
        .jobs
        .insert_with_extra(
            &ExtraRecord {
                id: &token,
                owner: &caller.owner,
                request: &request,
                extra: &extra,
                callback_url: s.callback_url.as_deref(),
                finished: None,
            },
            &job_quota(state),
        )
        .await
        .map_err(|e| insert_refusal(state, e))?;
    Ok(token)
}

/// What Judge0 PUTs to a submission's `callback_url`: the default fields, base64-encoded. None for a job that is
/// not a Judge0 submission.
pub async fn callback_body(state: &Arc<AppState>, owner: &str, token: &str) -> Option<Value> {
    match load(state, owner, token, true).await {
        Ok(Some(Ok(all))) => Some(record::select(all, record::DEFAULT_FIELDS)),
        _ => None,
    }
}

/// The record of a stored submission of `owner`, or None when there is none.
pub(super) async fn load(
    state: &Arc<AppState>,
    owner: &str,
    token: &str,
    base64: bool,
) -> Judge0Result<Option<Result<serde_json::Map<String, Value>, record::NotUtf8>>> {
    let Some(extra) = state.jobs.extra(token, owner).await.map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let Some(job) = state.jobs.get(token, owner).await.map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let s: Submission = serde_json::from_str(&extra).map_err(ApiError::internal)?;
    let name = language_name(state, s.language_id.unwrap_or(0)).await;
    Ok(Some(record::record(token, &s, &job, &name, base64)))
}

async fn language_name(state: &Arc<AppState>, id: i64) -> String {
    let entries = state.languages().await;
    catalogue::LANGUAGES
        .iter()
        .find(|(i, _, _)| *i == id)
        .and_then(|(_, _, lang)| entries.iter().find(|e| e.id == *lang))
        .map(|e| catalogue::display_name(id, e))
        .unwrap_or_default()
}
