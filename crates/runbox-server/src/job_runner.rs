//! Runs queued async executions, a bounded number at a time, and hands their records to [`crate::callbacks`].

use std::sync::Arc;
use std::time::Duration;

use crate::api::ExecuteBody;
use crate::running::{reserve, run_admitted, Admitted};
use crate::state::AppState;

/// The job runner's loop: claims queued jobs while there is capacity, forever (until the runtime stops).
pub async fn run(state: Arc<AppState>) {
    let mut purge_every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = state.job_runner_wakeup.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = purge_every.tick() => {
                let _ = state.jobs.purge(state.config.retention_hours as i64 * 3_600_000);
            }
        }
        // Owners whose key has no free run slot: their jobs stay queued (they are not failed) until one frees.
        let mut skip: Vec<String> = Vec::new();
        for (i, k) in state.keys.iter().enumerate() {
            if state.try_key_slot(Some(i)).is_err() {
                skip.push(k.config.name.clone());
            }
        }
        while !state.draining.load(std::sync::atomic::Ordering::Relaxed) && state.job_slots.available_permits() > 0 {
            let Ok(Some(job)) = state.jobs.claim_next_skipping(&skip) else {
                break;
            };
            let key = if state.auth_required() {
                state.key_named(&job.owner)
            } else {
                None
            };
            let Ok(key_slot) = state.try_key_slot(key) else {
                // The key's last slot went to another run since the list above was made.
                let _ = state.jobs.unclaim(&job.id);
                skip.push(job.owner);
                continue;
            };
            let slot = state.job_slots.clone().acquire_owned().await.expect("never closed");
            let state = state.clone();
            tokio::spawn(async move {
                run_job(&state, job, key_slot).await;
                drop(slot);
                state.wake_job_runner();
            });
        }
    }
}

/// Runs a claimed job with its key's run slot (taken by the worker loop, so that the key's `max_concurrent`
/// covers async jobs too).
async fn run_job(
    state: &Arc<AppState>,
    job: crate::jobs::Claimed,
    key_slot: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let outcome: Result<serde_json::Value, serde_json::Value> = async {
        let body: ExecuteBody = serde_json::from_str(&job.request)
            .map_err(|e| serde_json::json!({"code": "internal_error", "message": e.to_string()}))?;
        let to_json =
            |e: crate::error::ApiError| serde_json::json!({"code": e.code, "message": e.message, "details": e.details});
        let mut req = body
            .into_request(&state.config.limits, state.engine.catalogue())
            .map_err(to_json)?;
        req.tenant = job.owner.clone();
        let prepared = state
            .engine
            .prepare(req)
            .map_err(|e| to_json(crate::error::ApiError::from(e)))?;
        // The key's aggregate caps hold for async runs as for every other run.
        let budget = reserve(state, &job.owner, &prepared).map_err(to_json)?;
        let mut permit = state.acquire_run_with(key_slot).await.map_err(to_json)?;
        permit.owner = job.owner.clone();
        permit.budget = Some(budget);
        state.register_job(&job.id, permit.cancel.clone());
        let result = run_admitted(state, Admitted { permit, prepared }, None, |_| true).await;
        state.unregister_job(&job.id);
        let result = result.map_err(to_json)?;
        serde_json::to_value(result)
            .map_err(|e| serde_json::json!({"code": "internal_error", "message": e.to_string()}))
    }
    .await;
    let killed = outcome.as_ref().is_ok_and(|r| r["status"] == "killed");
    let cap = state.config.async_result_bytes as usize;
    let (result, error, truncated) = match outcome {
        // A result longer than a job may store is cut (its longest strings); one that cannot be cut to fit is
        // replaced by an error saying so. Either way the record stays within what the key's quota reserved.
        Ok(mut r) => match crate::jobs::shrink_result(&mut r, cap) {
            Some((text, cut)) => (Some(text), None, cut),
            None => {
                let e = serde_json::json!({"code": "result_too_large", "message":
                    format!("the result does not fit in the {cap} bytes an async execution stores")});
                (None, Some(e.to_string()), true)
            }
        },
        Err(mut e) => (None, crate::jobs::shrink_result(&mut e, cap).map(|(t, _)| t), false),
    };
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) && killed {
        // Cancelled by shutdown, not by its owner: it runs again after the restart.
        let _ = state.jobs.requeue_interrupted();
        return;
    }
    // A result that cannot be stored (the data directory's disk is full) is kept here and stored once it can be:
    // the record says `running` meanwhile, and the job keeps its slot. Only a shutdown gives up on it, and then
    // the record is still `running`, so the job runs again after the restart (nothing completed is reported lost).
    let mut backoff = Duration::from_millis(100);
    let mut reported = false;
    while let Err(e) = state
        .jobs
        .finish_stored(&job.id, result.as_deref(), error.as_deref(), truncated)
    {
        if !reported {
            tracing::error!(job = %job.id, error = %e, disk_full = e.is_disk_full(),
                "cannot store a job's result; keeping it and retrying");
            reported = true;
        }
        if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    if reported {
        tracing::info!(job = %job.id, "a job's result was stored after all");
    }
    if let Some(url) = job.callback_url {
        if let Ok(Some(view)) = state.jobs.get(&job.id, &job.owner) {
            crate::callbacks::deliver(state, &url, &job.owner, &view).await;
        }
    }
}
