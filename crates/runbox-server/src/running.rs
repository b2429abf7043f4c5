//! Admission and running of one execution request, shared by every route that runs code (REST, streaming,
//! WebSocket, the async job runner, the Judge0 and Piston adapters): the request is prepared once for its caller
//! ([`runbox_engine::Prepared`]), the key's share reserved, a run slot awaited ([`crate::admission`] decides), and
//! the prepared request run on a blocking thread with its metrics recorded.

use std::sync::Arc;
use std::time::Instant;

use runbox_engine::{ExecEvent, ExecuteRequest, ExecutionResult, Prepared};

use crate::admission::RunPermit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Checks a request that is stored to run later (an async execution): the run prepares it again then.
pub fn precheck(state: &AppState, req: &ExecuteRequest) -> Result<(), ApiError> {
    Ok(state.engine.check(req)?)
}

/// A request prepared for its caller and holding a run slot: what [`run_admitted`] runs.
pub struct Admitted {
    pub permit: RunPermit,
    pub prepared: Prepared,
}

/// Prepares a request for its caller (checked and decoded once; the engine runs this [`Prepared`] as it is),
/// reserves the key's share for it and waits for a run slot.
pub async fn admit(state: &Arc<AppState>, caller: &Caller, mut req: ExecuteRequest) -> ApiResult<Admitted> {
    req.tenant = caller.owner.clone();
    let prepared = state.engine.prepare(req)?;
    // The key's aggregate caps: a run whose limits would take the key's sandboxes past them is refused.
    let budget = reserve(state, &caller.owner, &prepared)?;
    let mut permit = state.admission.acquire_run(caller.key).await?;
    permit.budget = Some(budget);
    permit.owner = caller.owner.clone();
    Ok(Admitted { permit, prepared })
}

/// Reserves `owner`'s share of memory and processes for a prepared run (429 `key_capacity_exceeded` when the
/// key's caps would be passed).
pub fn reserve(
    state: &AppState,
    owner: &str,
    prepared: &Prepared,
) -> Result<runbox_engine::ledger::Reservation, ApiError> {
    state.engine.reserve_run(owner, prepared).map_err(|m| {
        state.metrics.record_rejection("key_capacity");
        ApiError::rate_limited("key_capacity_exceeded", m, 1)
    })
}

/// Runs an admitted request on a blocking thread, recording metrics. `on_event` returns false when nobody
/// listens any more (a closed stream): the run is then cancelled.
pub async fn run_admitted(
    state: &Arc<AppState>,
    admitted: Admitted,
    stdin: Option<Box<dyn std::io::Read + Send>>,
    mut on_event: impl FnMut(ExecEvent<'_>) -> bool + Send + 'static,
) -> ApiResult<ExecutionResult> {
    let started = Instant::now();
    let Admitted { permit, prepared } = admitted;
    let engine = state.engine.clone();
    let language = prepared.request().language.clone();
    let result = tokio::task::spawn_blocking(move || {
        let cancel = permit.cancel.clone();
        let r = engine.run(&prepared, stdin, &cancel, &mut |event| {
            if !on_event(event) {
                cancel.cancel();
            }
        });
        drop(permit);
        r
    })
    .await
    .map_err(ApiError::internal)?;
    let status = match &result {
        Ok(r) => r.status.as_str(),
        Err(e) => e.code(),
    };
    let lang = result.as_ref().map(|r| r.language.clone()).unwrap_or(language);
    state
        .metrics
        .record_execution(&lang, status, started.elapsed().as_secs_f64());
    Ok(result?)
}
