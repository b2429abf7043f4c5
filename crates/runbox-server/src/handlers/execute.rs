//! `POST /execute`: run once and answer with the result.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use runbox_engine::ExecutionResult;

use crate::api::ExecuteBody;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::running::{admit, run_admitted};
use crate::state::AppState;

/// Run code once, synchronously.
#[utoipa::path(post, path = "/execute", operation_id = "execute", tag = "execution", request_body(content = ExecuteBody, example = json!({"language": "python", "code": "print('hello')"})),
    responses(
        (status = 200, description = "The execution result (whatever the program did)", body = ExecutionResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn execute(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> ApiResult<Json<ExecutionResult>> {
    if body.callback_url.is_some() {
        return Err(ApiError::invalid_field("callback_url", "only for POST /executions"));
    }
    let req = body.into_request(&state.config.limits, state.engine.catalogue())?;
    let admitted = admit(&state, &caller, req).await?;
    Ok(Json(run_admitted(&state, admitted, None, |_| true).await?))
}
