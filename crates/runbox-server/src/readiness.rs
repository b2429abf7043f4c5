//! Readiness: whether this server can run code now, as opposed to liveness (`/health`: the process answers).
//!
//! A probe of the host says which protections exist, not that a sandbox can be built here: with this jail
//! binary, this cgroup tree and this data directory. So the server runs a trial sandbox before it listens and
//! again every [`TRIAL_INTERVAL`], and is `degraded` while sandboxes cannot run on this host, while the latest
//! trial failed, or while every warm pool fails to build sandboxes. `GET /health/ready` answers 503 then.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::state::AppState;

/// How often the trial sandbox runs again once the server is up.
pub const TRIAL_INTERVAL: Duration = Duration::from_secs(30);

/// The latest trial sandbox's result; empty until the first one ran (a server runs one before it listens).
#[derive(Default)]
pub struct Trials {
    latest: RwLock<Option<(Result<(), String>, Instant)>>,
}

impl Trials {
    pub fn record(&self, result: Result<(), String>) {
        *self.latest.write().unwrap_or_else(|e| e.into_inner()) = Some((result, Instant::now()));
    }

    /// The latest result and how long ago it was taken.
    pub fn latest(&self) -> Option<(Result<(), String>, Duration)> {
        let latest = self.latest.read().unwrap_or_else(|e| e.into_inner());
        latest.as_ref().map(|(r, at)| (r.clone(), at.elapsed()))
    }
}

/// What the server can do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    /// Shutting down: no new work.
    Draining,
    /// No trial sandbox has run yet (a state served without [`crate::serve`], as in-process tests do).
    Unchecked,
    /// Sandboxes cannot be built, with the reason.
    Degraded(String),
}

/// The readiness verdict from the state.
pub fn verdict(state: &AppState) -> Verdict {
    if state.admission.is_draining() || state.cluster.unready.load(Ordering::Relaxed) {
        return Verdict::Draining;
    }
    if let Err(problem) = &state.protections {
        return Verdict::Degraded(format!("sandboxes cannot run on this host: {problem}"));
    }
    match state.trials.latest() {
        None => return Verdict::Unchecked,
        Some((Err(e), _)) => {
            return Verdict::Degraded(format!(
                "the trial sandbox failed (data directory {}): {e}",
                state.config.data_dir.display()
            ))
        }
        Some((Ok(()), _)) => {}
    }
    match state.engine.pools_unavailable() {
        Some(why) => Verdict::Degraded(why),
        None => Verdict::Ready,
    }
}

/// Runs one trial sandbox (blocking: call it from a blocking thread) and records it; logs when the outcome
/// changes.
pub fn run_trial(state: &AppState) {
    let result = state.engine.trial_sandbox();
    let before = state.trials.latest().map(|(r, _)| r.is_ok());
    match &result {
        Err(e) if before != Some(false) => tracing::error!(
            problem = %e,
            data_dir = %state.config.data_dir.display(),
            "a trial sandbox failed: runs will fail until this is fixed; GET /health/ready reports it"
        ),
        Ok(()) if before == Some(false) => tracing::info!("a trial sandbox ran again: sandboxes work"),
        _ => {}
    }
    state.trials.record(result);
}

/// Re-runs the trial every [`TRIAL_INTERVAL`] until the server drains.
pub async fn keep_checking(state: Arc<AppState>) {
    loop {
        tokio::time::sleep(TRIAL_INTERVAL).await;
        if state.admission.is_draining() {
            return;
        }
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || run_trial(&s)).await;
    }
}
