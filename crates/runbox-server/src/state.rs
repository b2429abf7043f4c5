//! The server's one shared state (`Arc<AppState>`): the engine, the configuration, metrics, the job and session
//! stores, and [`Admission`] (keys, their limits, the run slots and the registries of in-flight runs that
//! shutdown cancels).

use std::sync::{Arc, RwLock};
use std::time::Instant;

use runbox_engine::sessions::Sessions;
use runbox_engine::{CatalogueEntry, Engine};
use runbox_sandbox::probe::InForce;

use crate::admission::Admission;
use crate::config::ServerConfig;
use crate::jobs::JobStore;
use crate::metrics::Metrics;

pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: ServerConfig,
    /// Who may do what, and when: keys, rate limits, run slots, in-flight runs, draining.
    pub admission: Arc<Admission>,
    pub started: Instant,
    pub metrics: Arc<Metrics>,
    pub protections: Result<InForce, String>,
    pub languages: RwLock<Option<Vec<CatalogueEntry>>>,
    pub jobs: JobStore,
    pub sessions: Arc<Sessions>,
    pub job_runner_wakeup: tokio::sync::Notify,
    /// The engine's life on this host (its sessions, protections and trial sandboxes; see
    /// `runbox_engine::host`): `engine`, `sessions` and `protections` above are its own.
    pub host: Arc<runbox_engine::host::Host>,
    /// Cancelled at shutdown: ends `/mcp`'s open streams, which would otherwise hold the drain open.
    pub mcp_shutdown: runbox_mcp::tokio_util::sync::CancellationToken,
    /// This node's place in a cluster: its id, its peers, forwarding (see [`crate::cluster`]).
    pub cluster: Arc<crate::cluster::Cluster>,
}

impl AppState {
    pub fn new(host: Arc<runbox_engine::host::Host>, config: ServerConfig, jobs: JobStore) -> AppState {
        let engine = host.engine().clone();
        let protections = host.protections().clone();
        let metrics = Arc::new(Metrics::default());
        let admission = Arc::new(Admission::new(&config, metrics.clone()));
        let sessions = host.sessions().clone();
        let cluster = Arc::new(crate::cluster::Cluster::new(&config));
        AppState {
            sessions,
            engine,
            config,
            admission,
            started: Instant::now(),
            metrics,
            protections,
            languages: RwLock::new(None),
            jobs,
            job_runner_wakeup: tokio::sync::Notify::new(),
            host,
            mcp_shutdown: Default::default(),
            cluster,
        }
    }

    pub fn wake_job_runner(&self) {
        self.job_runner_wakeup.notify_one();
    }

    /// The language catalogue, discovered once (at start, in the background) and cached.
    pub async fn languages(self: &Arc<Self>) -> Vec<CatalogueEntry> {
        if let Some(l) = self.languages.read().unwrap_or_else(|e| e.into_inner()).clone() {
            return l;
        }
        let engine = self.engine.clone();
        let found = tokio::task::spawn_blocking(move || engine.languages())
            .await
            .unwrap_or_default();
        *self.languages.write().unwrap_or_else(|e| e.into_inner()) = Some(found.clone());
        found
    }
}
