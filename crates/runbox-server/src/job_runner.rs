//! Runs queued async executions, a bounded number at a time, and hands their records to [`crate::callbacks`].
//! With a shared store (PostgreSQL), a running job's lease is renewed while it runs ([`keep_lease`]), and the run
//! stops as soon as the job is no longer this node's (cancelled or deleted from any node, or its lease lost).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
                let _ = state.jobs.purge(state.config.retention_hours as i64 * 3_600_000).await;
            }
        }
        // Callbacks another node was to deliver but did not (it stopped): one node takes each.
        while let Ok(Some((id, owner, url))) = state.jobs.claim_orphan_callback().await {
            let state = state.clone();
            tokio::spawn(async move { deliver_claimed(&state, &id, &owner, &url).await });
        }
        // Owners whose key has no free run slot: their jobs stay queued (they are not failed) until one frees.
        let admission = &state.admission;
        let mut skip: Vec<String> = admission.keys_without_a_free_slot();
        while !admission.is_draining() && admission.job_slots.available_permits() > 0 {
            let Ok(Some(job)) = state.jobs.claim_next_skipping(&skip).await else {
                break;
            };
            let key = if admission.auth_required() {
                admission.key_named(&job.owner)
            } else {
                None
            };
            let Ok(key_slot) = admission.try_key_slot(key) else {
                // The key's last slot went to another run since the list above was made.
                let _ = state.jobs.unclaim(&job).await;
                skip.push(job.owner);
                continue;
            };
            let slot = admission.job_slots.clone().acquire_owned().await.expect("never closed");
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
    let lost = Arc::new(AtomicBool::new(false));
    let lease = state
        .jobs
        .is_shared()
        .then(|| tokio::spawn(keep_lease(state.clone(), job.clone(), lost.clone())));
    run_claimed(state, &job, key_slot, &lost).await;
    if let Some(lease) = lease {
        lease.abort();
    }
    if lost.load(Ordering::Relaxed) {
        return;
    }
    if let Some(url) = &job.callback_url {
        if state.jobs.claim_callback(&job.id).await.unwrap_or(false) {
            deliver_claimed(state, &job.id, &job.owner, url).await;
        }
    }
}

/// Renews this node's lease on a running job a third of the way through it, for as long as the job runs. When
/// the job is no longer this node's (cancelled or deleted from any node, taken over), or when the lease could not
/// be renewed and is about to expire (the database unreachable: another node may take the job once it does), the
/// run is stopped and its outcome not stored: the job never runs on two nodes at once.
async fn keep_lease(state: Arc<AppState>, job: crate::jobs::Claimed, lost: Arc<AtomicBool>) {
    let lease = Duration::from_millis(state.config.async_lease_ms);
    // Claimed a moment ago: the lease runs from before now.
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(lease / 3).await;
        let asked = Instant::now();
        // A renewal that hangs (a partition) counts as failed: the lease runs out all the same.
        let renewal = tokio::time::timeout(lease / 3, state.jobs.renew(&job))
            .await
            .unwrap_or_else(|_| Err(crate::jobs::JobError::unavailable("the renewal timed out".into())));
        match renewal {
            Ok(true) => renewed = asked,
            Ok(false) => {
                tracing::info!(job = %job.id, "the job is no longer this node's (cancelled, deleted or taken over): stopping its run");
                break;
            }
            Err(e) if renewed.elapsed() >= lease * 2 / 3 => {
                tracing::warn!(job = %job.id, error = %e, "cannot renew a job's lease before it expires: stopping its run");
                break;
            }
            Err(e) => tracing::warn!(job = %job.id, error = %e, "cannot renew a job's lease; retrying"),
        }
    }
    lost.store(true, Ordering::Relaxed);
    // The run may not have registered yet (waiting for a sandbox slot): keep cancelling until it ends.
    loop {
        state.admission.cancel_job(&job.id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Delivers the callback of a job whose delivery this node claimed, then marks it delivered.
async fn deliver_claimed(state: &Arc<AppState>, id: &str, owner: &str, url: &str) {
    if let Ok(Some(view)) = state.jobs.get(id, owner).await {
        crate::callbacks::deliver(state, url, owner, &view).await;
    }
    if let Err(e) = state.jobs.callback_done(id).await {
        tracing::warn!(job = %id, error = %e, "cannot record a callback as delivered");
    }
}

/// Runs a claimed job and stores its outcome (unless `lost` says it is no longer this node's).
async fn run_claimed(
    state: &Arc<AppState>,
    job: &crate::jobs::Claimed,
    key_slot: Option<tokio::sync::OwnedSemaphorePermit>,
    lost: &AtomicBool,
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
        let mut permit = state.admission.acquire_run_with(key_slot).await.map_err(to_json)?;
        permit.owner = job.owner.clone();
        permit.budget = Some(budget);
        state.admission.register_job(&job.id, permit.cancel.clone());
        let result = run_admitted(state, Admitted { permit, prepared }, None, |_| true).await;
        state.admission.unregister_job(&job.id);
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
    if lost.load(Ordering::Relaxed) {
        // Stopped because the job is no longer this node's: whatever it produced is not its result.
        return;
    }
    if state.admission.is_draining() && killed {
        // Cancelled by shutdown, not by its owner: it runs again after the restart (or on another node).
        let _ = state.jobs.unclaim(job).await;
        return;
    }
    // A result that cannot be stored (the data directory's disk is full) is kept here and stored once it can be:
    // the record says `running` meanwhile, and the job keeps its slot. Only a shutdown gives up on it, and then
    // the record is still `running`, so the job runs again after the restart (nothing completed is reported lost).
    let mut backoff = Duration::from_millis(100);
    let mut reported = false;
    while let Err(e) = state
        .jobs
        .finish(job, result.as_deref(), error.as_deref(), truncated)
        .await
    {
        if !reported {
            tracing::error!(job = %job.id, error = %e, disk_full = e.is_disk_full(),
                "cannot store a job's result; keeping it and retrying");
            reported = true;
        }
        if state.admission.is_draining() || lost.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    if reported {
        tracing::info!(job = %job.id, "a job's result was stored after all");
    }
}
