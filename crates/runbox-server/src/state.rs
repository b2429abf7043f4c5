//! The server's one shared state (`Arc<AppState>`): the engine, keys and their limits, the run slots, metrics and
//! the registry of in-flight runs that shutdown cancels.

use runbox_engine::sync::LockOrRecover;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use runbox_engine::sessions::Sessions;
use runbox_engine::{CancelToken, CatalogueEntry, Engine};
use runbox_sandbox::probe::InForce;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{ApiKeyConfig, ServerConfig};
use crate::error::ApiError;
use crate::jobs::JobStore;
use crate::metrics::Metrics;

/// A token bucket: `capacity` requests, refilled continuously over a minute.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    capacity: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: u32) -> Bucket {
        Bucket {
            tokens: per_minute as f64,
            capacity: per_minute as f64,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is available.
    fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        let rate = self.capacity / 60.0;
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

pub struct KeyState {
    pub config: ApiKeyConfig,
    bucket: Option<Mutex<Bucket>>,
    slots: Option<Arc<Semaphore>>,
}

pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: ServerConfig,
    pub keys: Vec<KeyState>,
    pub started: Instant,
    pub metrics: Metrics,
    pub protections: Result<InForce, String>,
    pub languages: RwLock<Option<Vec<CatalogueEntry>>>,
    pub jobs: JobStore,
    pub sessions: Arc<Sessions>,
    run_slots: Arc<Semaphore>,
    inflight: Mutex<HashMap<u64, CancelToken>>,
    next_run: AtomicU64,
    pub draining: AtomicBool,
    /// Async jobs running at once (half the sandbox slots, so synchronous requests are never starved).
    pub job_slots: Arc<Semaphore>,
    pub job_runner_wakeup: tokio::sync::Notify,
    running_jobs: Mutex<HashMap<String, CancelToken>>,
    /// The engine's life on this host (its sessions, protections and trial sandboxes; see
    /// `runbox_engine::host`): `engine`, `sessions` and `protections` above are its own.
    pub host: Arc<runbox_engine::host::Host>,
    /// Cancelled at shutdown: ends `/mcp`'s open streams, which would otherwise hold the drain open.
    pub mcp_shutdown: runbox_mcp::tokio_util::sync::CancellationToken,
    /// This node's place in a cluster: its id, its peers, forwarding (see [`crate::cluster`]).
    pub cluster: Arc<crate::cluster::Cluster>,
}

/// Every run slot of a key is taken.
#[derive(Debug)]
pub struct KeySlotsFull;

/// A slot to run one sandboxed execution; released on drop.
pub struct RunPermit {
    _global: OwnedSemaphorePermit,
    _key: Option<OwnedSemaphorePermit>,
    state: Arc<AppState>,
    id: u64,
    pub cancel: CancelToken,
    /// Who runs: the engine scopes what a run may learn of earlier runs (compile cache hits) to it.
    pub owner: String,
    /// The key's share of memory and processes this run holds (see `runbox_engine::ledger`).
    pub budget: Option<runbox_engine::ledger::Reservation>,
}

impl Drop for RunPermit {
    fn drop(&mut self) {
        self.state.metrics.active_runs.fetch_sub(1, Ordering::Relaxed);
        self.state.inflight.lock_or_recover().remove(&self.id);
    }
}

impl AppState {
    pub fn new(host: Arc<runbox_engine::host::Host>, config: ServerConfig, jobs: JobStore) -> AppState {
        let engine = host.engine().clone();
        let protections = host.protections().clone();
        let keys = config
            .keys()
            .into_iter()
            .map(|k| KeyState {
                bucket: k.rate_limit_per_minute.map(|n| Mutex::new(Bucket::new(n.max(1)))),
                slots: k.max_concurrent.map(|n| Arc::new(Semaphore::new(n.max(1) as usize))),
                config: k,
            })
            .collect();
        let config_job_slots = config.max_concurrent.div_ceil(2);
        let sessions = host.sessions().clone();
        let cluster = Arc::new(crate::cluster::Cluster::new(&config));
        AppState {
            sessions,
            engine,
            run_slots: Arc::new(Semaphore::new(config.max_concurrent)),
            config,
            keys,
            started: Instant::now(),
            metrics: Metrics::default(),
            protections,
            languages: RwLock::new(None),
            jobs,
            inflight: Mutex::new(HashMap::new()),
            next_run: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            job_slots: Arc::new(Semaphore::new(config_job_slots)),
            job_runner_wakeup: tokio::sync::Notify::new(),
            running_jobs: Mutex::new(HashMap::new()),
            host,
            mcp_shutdown: Default::default(),
            cluster,
        }
    }

    pub fn auth_required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Finds the key a presented secret belongs to, comparing in constant time against every key.
    pub fn key_index(&self, presented: &str) -> Option<usize> {
        use subtle::ConstantTimeEq;
        let mut found = None;
        for (i, k) in self.keys.iter().enumerate() {
            if bool::from(k.config.key.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(i);
            }
        }
        found
    }

    /// Applies the key's rate limit.
    pub fn check_rate(&self, key: Option<usize>) -> Result<(), ApiError> {
        let Some(bucket) = key.and_then(|i| self.keys[i].bucket.as_ref()) else {
            return Ok(());
        };
        let result = bucket.lock_or_recover().take();
        result.map_err(|wait| {
            self.metrics.record_rejection("rate_limited");
            ApiError::rate_limited(
                "rate_limited",
                "this API key's request rate limit is exceeded",
                wait.as_secs() + 1,
            )
        })
    }

    /// The index of the key named `owner` (an async job's owner), if that key is still configured.
    pub fn key_named(&self, owner: &str) -> Option<usize> {
        self.keys.iter().position(|k| k.config.name == owner)
    }

    /// One of the key's own run slots, without waiting: `Ok(None)` when the key has no concurrency limit.
    pub fn try_key_slot(&self, key: Option<usize>) -> Result<Option<OwnedSemaphorePermit>, KeySlotsFull> {
        match key.and_then(|i| self.keys[i].slots.clone()) {
            Some(slots) => slots.try_acquire_owned().map(Some).map_err(|_| KeySlotsFull),
            None => Ok(None),
        }
    }

    /// Waits for a run slot: the key's own concurrency first (429 when full), then the server's (503 when the
    /// wait queue is full or the server is draining).
    pub async fn acquire_run(self: &Arc<Self>, key: Option<usize>) -> Result<RunPermit, ApiError> {
        if self.draining.load(Ordering::Relaxed) {
            self.metrics.record_rejection("draining");
            return Err(ApiError::unavailable("draining", "the server is shutting down"));
        }
        let key_permit = self.try_key_slot(key).map_err(|KeySlotsFull| {
            self.metrics.record_rejection("key_concurrency");
            ApiError::rate_limited(
                "too_many_concurrent",
                "this API key already has its maximum of runs in flight",
                1,
            )
        })?;
        self.acquire_run_with(key_permit).await
    }

    /// Waits for a server-wide run slot for a run that already holds its key's slot (if its key has any).
    pub async fn acquire_run_with(
        self: &Arc<Self>,
        key_permit: Option<OwnedSemaphorePermit>,
    ) -> Result<RunPermit, ApiError> {
        if self.draining.load(Ordering::Relaxed) {
            self.metrics.record_rejection("draining");
            return Err(ApiError::unavailable("draining", "the server is shutting down"));
        }
        let global = match self.run_slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.metrics.queued.load(Ordering::Relaxed) >= self.config.max_queue as i64 {
                    self.metrics.record_rejection("overloaded");
                    return Err(ApiError::unavailable(
                        "overloaded",
                        "every sandbox slot is busy and the queue is full",
                    ));
                }
                self.metrics.queued.fetch_add(1, Ordering::Relaxed);
                let p = self.run_slots.clone().acquire_owned().await;
                self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
                p.map_err(|_| ApiError::unavailable("draining", "the server is shutting down"))?
            }
        };
        self.metrics.active_runs.fetch_add(1, Ordering::Relaxed);
        let id = self.next_run.fetch_add(1, Ordering::Relaxed);
        let cancel = CancelToken::new();
        self.inflight.lock_or_recover().insert(id, cancel.clone());
        Ok(RunPermit {
            _global: global,
            _key: key_permit,
            state: self.clone(),
            id,
            cancel,
            owner: String::new(),
            budget: None,
        })
    }

    pub fn wake_job_runner(&self) {
        self.job_runner_wakeup.notify_one();
    }

    pub fn register_job(&self, id: &str, cancel: CancelToken) {
        self.running_jobs.lock_or_recover().insert(id.to_string(), cancel);
    }

    pub fn unregister_job(&self, id: &str) {
        self.running_jobs.lock_or_recover().remove(id);
    }

    /// Cancels a running async job (its record is already marked cancelled).
    pub fn cancel_job(&self, id: &str) {
        if let Some(token) = self.running_jobs.lock_or_recover().get(id) {
            token.cancel();
        }
    }

    /// Cancels every run in flight (shutdown).
    pub fn cancel_all(&self) {
        for token in self.inflight.lock_or_recover().values() {
            token.cancel();
        }
    }

    pub fn inflight_count(&self) -> usize {
        self.inflight.lock_or_recover().len()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_capacity_then_says_when() {
        let mut b = Bucket::new(2);
        assert!(b.take().is_ok());
        assert!(b.take().is_ok());
        let wait = b.take().unwrap_err();
        assert!(
            wait <= Duration::from_secs(30) && wait > Duration::from_secs(20),
            "{wait:?}"
        );
    }
}
