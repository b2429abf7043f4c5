//! runbox's HTTP API: a thin axum layer over `runbox-engine`. [`app`] builds the router for a state (tests call
//! it without a socket); [`serve`] runs the real server with discovery, the async job runner and graceful shutdown.

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

use runbox_engine::{Engine, EngineConfig, Jail};
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

/// Builds the state: engine, job store (under the data directory, or the shared database), sandbox protections.
pub fn build_state(config: ServerConfig, jail: Jail) -> Result<Arc<AppState>, String> {
    // A configuration built in code (not loaded) gets the same checks: unique key names, long keys, loopback.
    config.validate().map_err(|e| e.to_string())?;
    let mut policy = policy(&config);
    let host = runbox_sandbox::probe::host();
    policy.cgroup_mounts = Some(host.cgroups.clone());
    let protections = runbox_sandbox::probe::decide(&host, &policy);
    if runbox_sandbox::probe::is_root() {
        let removed = runbox_sandbox::cgroup::remove_empty_leftovers(&host.cgroups, &policy.cgroup_parent);
        if removed > 0 {
            tracing::info!(removed, "removed empty cgroups left by jails that were killed");
        }
    }
    // All of runbox under one parent cgroup, capped as a whole; with cgroups in force and the caps not applicable,
    // the server does not start (fail closed).
    if let Ok(runbox_sandbox::probe::InForce {
        cgroup: Some(version), ..
    }) = &protections
    {
        let a = &config.aggregate;
        let written = runbox_sandbox::cgroup::limit_parent(
            &host.cgroups,
            *version,
            &a.cgroup_parent,
            a.memory_mb << 20,
            a.processes,
        )
        .map_err(|e| format!("cannot cap all sandboxes together (aggregate): {e}"))?;
        tracing::info!(memory_mb = a.memory_mb, processes = a.processes, files = ?written, "aggregate caps in force");
    }
    let engine = Engine::new(EngineConfig {
        languages_dir: config.languages_dir.clone(),
        data_dir: config.data_dir.clone(),
        policy,
        caps: config.limits.clone(),
        jail,
        compile_cache_bytes: config.compile_cache_mb << 20,
        pools: config.pools.clone(),
    })
    .map_err(|e| e.to_string())?;
    engine
        .ledger()
        .set_caps(config.aggregate.key_memory_mb << 20, config.aggregate.key_processes);
    // What a killed predecessor left (its sandboxes' processes, cgroups and workspaces) goes before anything runs
    // again, in particular before interrupted async jobs are run again below.
    let swept = engine.sweep_leftovers();
    if swept != runbox_engine::Swept::default() {
        tracing::info!(
            cgroups = swept.cgroups,
            workspaces = swept.workspaces,
            "swept the sandboxes left by a server that did not shut down"
        );
    }
    let (jobs, requeued) = jobs::JobStore::from_config(&config).map_err(|e| e.to_string())?;
    if requeued > 0 {
        tracing::info!(
            requeued,
            "async executions interrupted by the last shutdown will run again"
        );
    }
    let state = AppState::new(Arc::new(engine), config, protections, jobs);
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
    if state.protections.is_ok() {
        let trial = state.clone();
        let _ = tokio::task::spawn_blocking(move || readiness::run_trial(&trial)).await;
        tokio::spawn(readiness::keep_checking(state.clone()));
    }
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
    // Pools start once their languages are known to be installed (probing them takes a moment).
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || engine.start_pools());
    state.sessions.start_warm();
    let reaper = state.sessions.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let sessions = reaper.clone();
            let ended = tokio::task::spawn_blocking(move || sessions.reap()).await.unwrap_or(0);
            if ended > 0 {
                tracing::info!(ended, "idle or over-age sessions ended");
            }
        }
    });

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
    let sessions = state.sessions.clone();
    let _ = tokio::task::spawn_blocking(move || sessions.close_all()).await;
    let engine = state.engine.clone();
    let _ = tokio::task::spawn_blocking(move || engine.drain_pools()).await;
    // Jails finish tearing their sandboxes down after they report: wait for them, so nothing outlives us.
    let _ = tokio::task::spawn_blocking(|| runbox_sandbox::wait_for_teardowns(Duration::from_secs(10))).await;
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
