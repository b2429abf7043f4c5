//! Readiness: whether this server can run code now, as opposed to liveness (`/health`: the process answers).
//!
//! A probe of the host says which protections exist, not that a sandbox can be built here: with this jail
//! binary, this cgroup tree and this data directory. So the engine's host (`runbox_engine::host`) runs a trial
//! sandbox before the server listens and again every [`TRIAL_INTERVAL`], and the server is `degraded` while
//! sandboxes cannot run on this host, while the latest trial failed, or while every warm pool fails to build
//! sandboxes. `GET /health/ready` answers 503 then.

use std::sync::atomic::Ordering;

pub use runbox_engine::host::TRIAL_INTERVAL;

use crate::state::AppState;

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
    match state.host.latest_trial() {
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
