//! runbox's HTTP API: a thin axum layer over `runbox-engine`. [`app`] builds the router for a state (tests call
//! it without a socket); [`serve`] runs the real server with discovery, the async job runner and graceful shutdown.
//! The engine's life on the host (protections, leftovers, trials, pools, sessions, shutdown) is
//! `runbox_engine::host`'s: [`build_state`] starts it, [`serve`] runs its background duties and ends it.

pub mod admission;
pub mod api;
pub mod auth;
pub mod callbacks;
pub mod chunk;
pub mod cluster;
pub mod compat;
pub mod config;
pub mod error;
pub mod events;
pub mod extract;
pub mod handlers;
pub mod host_guard;
pub mod job_runner;
pub mod jobs;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod origins;
pub mod readiness;
pub mod router;
pub mod running;
pub mod state;
pub mod unread_body;

use std::sync::Arc;
use std::time::Duration;

use runbox_engine::host::{AggregateCaps, Background, Host, HostConfig, KeyCaps};
use runbox_engine::{EngineConfig, Jail};
use runbox_sandbox::HostPolicy;

pub use config::ServerConfig;
pub use state::AppState;

/// The router over a state.
pub fn app(state: Arc<AppState>) -> axum::Router {
    router::router(state)
}

/// The host policy a configuration asks for.
pub fn policy(config: &ServerConfig) -> HostPolicy {
    HostPolicy {
        degraded: config.allow_degraded.iter().copied().collect(),
        cgroup: config.cgroup,
        cgroup_parent: config.aggregate.cgroup_parent.clone(),
        ..HostPolicy::default()
    }
}

/// The engine's host for a configuration: its engine, sessions, the caps on all sandboxes together and on each
/// key, and every background duty of a server.
pub fn host_config(config: &ServerConfig, jail: Jail) -> HostConfig {
    let a = &config.aggregate;
    HostConfig {
        engine: EngineConfig {
            languages_dir: config.languages_dir.clone(),
            data_dir: config.data_dir.clone(),
            policy: policy(config),
            caps: config.limits.clone(),
            jail,
            compile_cache_bytes: config.compile_cache_mb << 20,
            pools: config.pools.clone(),
        },
        sessions: config.sessions.clone(),
        aggregate: Some(AggregateCaps {
            memory_bytes: a.memory_mb << 20,
            processes: a.processes,
        }),
        key_caps: Some(KeyCaps {
            memory_bytes: a.key_memory_mb << 20,
            processes: a.key_processes,
        }),
        background: Background::SERVER,
    }
}

/// Builds the state: the engine's host (protections, leftovers swept, see `runbox_engine::host`), then the job
/// store (under the data directory, or the shared database) and the cluster.
pub fn build_state(config: ServerConfig, jail: Jail) -> Result<Arc<AppState>, String> {
    // A configuration built in code (not loaded) gets the same checks: unique key names, long keys, loopback.
    config.validate().map_err(|e| e.to_string())?;
    // Leftovers of a killed predecessor are swept here, before interrupted async jobs are run again below.
    let host = Host::start(host_config(&config, jail))?;
    let (jobs, requeued) = jobs::JobStore::from_config(&config).map_err(|e| e.to_string())?;
    if requeued > 0 {
        tracing::info!(
            requeued,
            "async executions interrupted by the last shutdown will run again"
        );
    }
    let state = AppState::new(Arc::new(host), config, jobs);
    state.cluster.install(&state.sessions);
    // Executions in a store every node shares are answered by any node; in a node's own SQLite, by that node.
    state
        .cluster
        .jobs_node_local
        .store(!state.jobs.is_shared(), std::sync::atomic::Ordering::Relaxed);
    if state.cluster.enabled() {
        tracing::info!(node = %state.cluster.node, "cluster node: ids carry the node id");
    }
    Ok(Arc::new(state))
}

/// `runbox serve`: builds the state for `config` and serves it on a runtime of its own until SIGTERM or SIGINT.
/// The one call the `runbox` binary makes into this crate (besides reading the configuration).
pub fn run(config: ServerConfig, jail: Jail) -> Result<(), String> {
    let state = build_state(config, jail)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start the async runtime: {e}"))?;
    runtime.block_on(serve(state))
}

/// Runs the server until SIGTERM or SIGINT, then drains: stops accepting, lets in-flight runs finish within the
/// grace period, cancels the rest (their sandboxes are killed) and leaves queued async jobs in the database.
pub async fn serve(state: Arc<AppState>) -> Result<(), String> {
    // Everything that could fail is built before the "listening" line scripts wait for.
    state.cluster.install_execution_ids();
    let app = app(state.clone());
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(state.config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", state.config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    match &state.protections {
        Ok(f) => tracing::info!(?f, "sandbox protections in force"),
        Err(e) => tracing::error!(problem = %e, "sandboxes cannot run on this host: every execution will fail"),
    }
    if state.admission.auth_required() {
        tracing::info!(keys = state.admission.key_count(), "API keys required");
    } else {
        tracing::warn!("no API key configured: listening on loopback only, without authentication");
    }
    // A trial sandbox before the server says it listens: readiness tells the truth from the first request.
    let host = state.host.clone();
    let _ = tokio::task::spawn_blocking(move || host.first_trial()).await;
    // Machine-readable line for scripts and tests that start the server on port 0.
    println!("runbox listening on http://{addr}");
    tracing::info!(%addr, "listening");

    let discovery = state.clone();
    tokio::spawn(async move {
        let langs = discovery.languages().await;
        tracing::info!(
            available = langs.iter().filter(|l| l.available).count(),
            total = langs.len(),
            "languages discovered"
        );
    });
    tokio::spawn(job_runner::run(state.clone()));
    // The engine's background duties: trials again and again, warm pools, warm sessions, the session reaper.
    state.host.start_background();

    let shutdown_state = state.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            cluster::drain::drain(&shutdown_state).await;
        })
        .await
        .map_err(|e| e.to_string())?;
    // Cancelled runs end within moments (the jail kills the sandbox on SIGTERM); wait for them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while state.admission.inflight_count() > 0 && tokio::time::Instant::now() < deadline {
        state.admission.cancel_all();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The engine's orderly end: sessions ended, pools killed, the jails' teardowns waited for (nothing outlives us).
    let host = state.host.clone();
    let _ = tokio::task::spawn_blocking(move || host.shutdown()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT. The handlers are installed at once, so a failure is reported before
/// the server says it listens.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("install a SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("install a SIGINT handler: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
