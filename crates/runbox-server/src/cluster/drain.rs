//! Shutting a node down without failing its clients (SIGTERM, as a rolling restart or a scale-down sends it):
//!
//! 1. readiness (`/health/ready`) turns unready at once, while the node keeps serving for
//!    `cluster.drain_delay_ms`, the time the orchestrator and the front door take to stop sending it requests
//!    (liveness, `/health`, stays 200 throughout: the process is healthy, only leaving);
//! 2. then it takes no new runs, sessions or async jobs (503 `draining`, which a front door may retry elsewhere
//!    since nothing ran) and waits up to `shutdown_grace_ms` for running runs and cells to finish, then cancels
//!    what is left;
//! 3. it ends its sessions: from then on each of its session routes answers `410 session_lost` with reason
//!    `node_draining`, and peers that forward to it learn the reason, which they keep giving once it is gone;
//! 4. it stops listening ([`crate::serve`] continues from there). It notes in its data directory that this life
//!    drained, so that when it starts again there (a StatefulSet pod keeps its name; give it a persistent data
//!    directory to keep this too) it answers its earlier life's sessions with `410 session_lost`, `node_draining`;
//!    without that note (killed, or a fresh data directory) the reason is `node_restarted`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::state::AppState;

/// Runs steps 1 to 3; returns when the listener may close.
pub async fn drain(state: &Arc<AppState>) {
    state.cluster.unready.store(true, Ordering::Relaxed);
    let delay = state.config.cluster.drain_delay_ms;
    if delay > 0 {
        tracing::info!(
            delay_ms = delay,
            "unready: serving on while the front door stops sending requests"
        );
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    tracing::info!("shutting down: draining in-flight runs and cells");
    state.admission.start_draining();
    state.host.begin_shutdown();
    state.mcp_shutdown.cancel();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(state.config.shutdown_grace_ms);
    while (state.admission.inflight_count() > 0 || state.sessions.busy_count() > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    state.admission.cancel_all();
    let host = state.host.clone();
    let _ = tokio::task::spawn_blocking(move || host.end_sessions()).await;
    state.cluster.sessions_ended.store(true, Ordering::Relaxed);
    state.cluster.record_drained();
    tracing::info!("sessions ended; their clients get 410 session_lost (node_draining)");
}
