//! `POST /execute/stream`: the same request as `/execute`, answered with Server-Sent Events as things happen:
//! `compile` (compiler output), `stdout`, `stderr`, `test_case` (judge verdicts), then one `result` (or `error`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

use crate::api::ExecuteBody;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::events::EventTranslator;
use crate::extract::ApiJson;
use crate::running::{admit, run_admitted};
use crate::state::AppState;

fn event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name))
}

/// Run code once and stream its output as Server-Sent Events.
#[utoipa::path(post, path = "/execute/stream", operation_id = "executeStream", tag = "execution",
    request_body(content = ExecuteBody, example = json!({"language": "python", "code": "print('hello')"})),
    responses(
        (status = 200, description = "text/event-stream of `compile`, `stdout`, `stderr`, `test_case` events with \
            JSON data `{data, base64?}`, then one `result` event (the execution result) or `error` event",
            content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn execute_stream(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    if body.callback_url.is_some() {
        return Err(ApiError::invalid_field("callback_url", "only for POST /executions"));
    }
    let req = body.into_request(&state.config.limits, state.engine.catalogue())?;
    let admitted = admit(&state, &caller, req).await?;
    let (tx, rx) = mpsc::unbounded_channel::<Event>();
    // A client that hangs up ends the run at once, even a silent one that sends no event to notice it by.
    let hangup = {
        let (tx, cancel) = (tx.clone(), admitted.permit.cancel.clone());
        tokio::spawn(async move {
            tx.closed().await;
            cancel.cancel();
        })
    };
    tokio::spawn(async move {
        let events = tx.clone();
        let mut translator = EventTranslator::default();
        let result = run_admitted(&state, admitted, None, move |ev| match translator.translate(ev) {
            Some((name, data)) => events.send(event(&name, &data)).is_ok(),
            None => !events.is_closed(),
        })
        .await;
        let last = match result {
            Ok(r) => event("result", &r),
            Err(e) => event(
                "error",
                &ErrorBody {
                    code: e.code.to_string(),
                    message: e.message,
                    details: e.details,
                },
            ),
        };
        hangup.abort();
        let _ = tx.send(last);
    });
    Ok(Sse::new(UnboundedReceiverStream::new(rx).map(Ok)).keep_alive(KeepAlive::default()))
}
