//! Admission: whether a request may do work, decided in one place. A request is authenticated against the
//! configured keys, takes a token from its key's rate bucket, then a run slot (its key's own, then one of the
//! server's, queueing within `max_queue`), and is registered in flight so that shutdown can cancel it. Once the
//! server drains, no new work is admitted. Async jobs have their own share of the slots and their own registry.
//!
//! It lives apart from [`crate::state::AppState`] (engine, configuration, stores) so that these decisions and their
//! refusals (`401 unauthorized`, `429 rate_limited` / `too_many_concurrent`, `503 overloaded` / `draining`) are
//! unit-tested without an engine.

use runbox_engine::sync::LockOrRecover;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runbox_engine::CancelToken;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{Caller, ANONYMOUS_OWNER};
use crate::config::{ApiKeyConfig, ServerConfig};
use crate::error::ApiError;
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
        self.take_at(Instant::now())
    }

    /// [`Bucket::take`] at a given time (tests pass a clock of their own).
    fn take_at(&mut self, now: Instant) -> Result<(), Duration> {
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

/// A configured key with its rate bucket and its own run slots (when it has limits).
struct KeyState {
    config: ApiKeyConfig,
    bucket: Option<Mutex<Bucket>>,
    slots: Option<Arc<Semaphore>>,
}

/// The admission decisions of one server: keys, their buckets and slots, the server's slots, what is in flight
/// and whether the server is draining.
pub struct Admission {
    keys: Vec<KeyState>,
    run_slots: Arc<Semaphore>,
    /// Runs that may wait for a server-wide slot before new ones are refused (`503 overloaded`).
    max_queue: usize,
    metrics: Arc<Metrics>,
    inflight: Mutex<HashMap<u64, CancelToken>>,
    next_run: AtomicU64,
    draining: AtomicBool,
    /// Async jobs running at once (half the sandbox slots, so synchronous requests are never starved).
    pub job_slots: Arc<Semaphore>,
    running_jobs: Mutex<HashMap<String, CancelToken>>,
}

/// Every run slot of a key is taken.
#[derive(Debug)]
pub struct KeySlotsFull;

/// A slot to run one sandboxed execution; released on drop.
pub struct RunPermit {
    _global: OwnedSemaphorePermit,
    _key: Option<OwnedSemaphorePermit>,
    admission: Arc<Admission>,
    id: u64,
    pub cancel: CancelToken,
    /// Who runs: the engine scopes what a run may learn of earlier runs (compile cache hits) to it.
    pub owner: String,
    /// The key's share of memory and processes this run holds (see `runbox_engine::ledger`).
    pub budget: Option<runbox_engine::ledger::Reservation>,
}

impl Drop for RunPermit {
    fn drop(&mut self) {
        self.admission.metrics.active_runs.fetch_sub(1, Ordering::Relaxed);
        self.admission.inflight.lock_or_recover().remove(&self.id);
    }
}

impl Admission {
    /// The keys and slots a configuration asks for; rejections and queue lengths are counted in `metrics`.
    pub fn new(config: &ServerConfig, metrics: Arc<Metrics>) -> Admission {
        let keys = config
            .keys()
            .into_iter()
            .map(|k| KeyState {
                bucket: k.rate_limit_per_minute.map(|n| Mutex::new(Bucket::new(n.max(1)))),
                slots: k.max_concurrent.map(|n| Arc::new(Semaphore::new(n.max(1) as usize))),
                config: k,
            })
            .collect();
        Admission {
            keys,
            run_slots: Arc::new(Semaphore::new(config.max_concurrent)),
            max_queue: config.max_queue,
            metrics,
            inflight: Mutex::new(HashMap::new()),
            next_run: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            job_slots: Arc::new(Semaphore::new(config.max_concurrent.div_ceil(2))),
            running_jobs: Mutex::new(HashMap::new()),
        }
    }

    pub fn auth_required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// How many keys are configured.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The configured key at `index` (as [`Caller::key`] names it).
    pub fn key(&self, index: usize) -> &ApiKeyConfig {
        &self.keys[index].config
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

    /// Who presents these secrets: the anonymous owner when no key is configured; otherwise the first presented
    /// secret that is a key (every one compared with every key), after taking a token of its rate limit.
    pub fn authenticate(&self, presented: &[String]) -> Result<Caller, ApiError> {
        if !self.auth_required() {
            return Ok(Caller {
                owner: ANONYMOUS_OWNER.into(),
                key: None,
            });
        }
        let found = presented
            .iter()
            .map(|k| self.key_index(k))
            .fold(None, |first, this| first.or(this));
        let Some(index) = found else {
            self.metrics.record_rejection("unauthorized");
            return Err(ApiError::unauthorized());
        };
        self.check_rate(Some(index))?;
        Ok(Caller {
            owner: self.keys[index].config.name.clone(),
            key: Some(index),
        })
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

    /// The names of the keys none of whose run slots is free now.
    pub fn keys_without_a_free_slot(&self) -> Vec<String> {
        (0..self.keys.len())
            .filter(|&i| self.try_key_slot(Some(i)).is_err())
            .map(|i| self.keys[i].config.name.clone())
            .collect()
    }

    /// One of the key's own run slots, without waiting: `Ok(None)` when the key has no concurrency limit.
    pub fn try_key_slot(&self, key: Option<usize>) -> Result<Option<OwnedSemaphorePermit>, KeySlotsFull> {
        match key.and_then(|i| self.keys[i].slots.clone()) {
            Some(slots) => slots.try_acquire_owned().map(Some).map_err(|_| KeySlotsFull),
            None => Ok(None),
        }
    }

    /// Whether the server is shutting down (it admits no new work).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// From now on, no new work is admitted.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Waits for a run slot: the key's own concurrency first (429 when full), then the server's (503 when the
    /// wait queue is full or the server is draining).
    pub async fn acquire_run(self: &Arc<Self>, key: Option<usize>) -> Result<RunPermit, ApiError> {
        if self.is_draining() {
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
        if self.is_draining() {
            self.metrics.record_rejection("draining");
            return Err(ApiError::unavailable("draining", "the server is shutting down"));
        }
        let global = match self.run_slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.metrics.queued.load(Ordering::Relaxed) >= self.max_queue as i64 {
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
            admission: self.clone(),
            id,
            cancel,
            owner: String::new(),
            budget: None,
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn admission(configure: impl FnOnce(&mut ServerConfig)) -> Arc<Admission> {
        let mut config = ServerConfig::default();
        configure(&mut config);
        Arc::new(Admission::new(&config, Arc::new(Metrics::default())))
    }

    fn key(name: &str, rate: Option<u32>, concurrent: Option<u32>) -> ApiKeyConfig {
        ApiKeyConfig {
            name: name.into(),
            key: format!("{name}-0123456789abcdef"),
            rate_limit_per_minute: rate,
            max_concurrent: concurrent,
        }
    }

    #[track_caller]
    fn assert_refused(result: Result<impl Sized, ApiError>, status: StatusCode, code: &str) {
        match result {
            Ok(_) => panic!("admitted; expected {status} {code}"),
            Err(e) => assert_eq!((e.status, e.code), (status, code), "{}", e.message),
        }
    }

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

    #[test]
    fn an_empty_bucket_refills_at_its_rate_and_never_past_its_capacity() {
        let mut b = Bucket::new(60);
        let start = b.last;
        for _ in 0..60 {
            b.take_at(start).unwrap();
        }
        assert!(b.take_at(start).is_err());
        // One token a second at 60 a minute.
        assert!(b.take_at(start + Duration::from_millis(1_010)).is_ok());
        assert!(b.take_at(start + Duration::from_millis(1_020)).is_err());
        // An hour idle refills the bucket to its capacity, not beyond.
        let later = start + Duration::from_secs(3_600);
        for _ in 0..60 {
            b.take_at(later).unwrap();
        }
        assert!(b.take_at(later).is_err());
    }

    #[test]
    fn a_key_past_its_rate_is_refused_with_429_rate_limited() {
        let a = admission(|c| c.api_keys = vec![key("a", Some(2), None), key("b", None, None)]);
        let secret = a.key(0).key.clone();
        for _ in 0..2 {
            assert_eq!(a.authenticate(std::slice::from_ref(&secret)).unwrap().owner, "a");
        }
        assert_refused(
            a.authenticate(std::slice::from_ref(&secret)),
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
        );
        // Another key has its own bucket.
        let other = a.key(1).key.clone();
        assert_eq!(a.authenticate(&[other]).unwrap().key, Some(1));
    }

    #[test]
    fn authentication_takes_the_first_presented_secret_that_is_a_key() {
        let a = admission(|c| c.api_keys = vec![key("a", None, None), key("b", None, None)]);
        let b = a.key(1).key.clone();
        let caller = a.authenticate(&["wrong".into(), b]).unwrap();
        assert_eq!((caller.owner.as_str(), caller.key), ("b", Some(1)));
        assert_refused(
            a.authenticate(&["wrong".into()]),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        // Without keys everyone is the anonymous owner.
        let keyless = admission(|_| {});
        let caller = keyless.authenticate(&[]).unwrap();
        assert_eq!((caller.owner.as_str(), caller.key), (ANONYMOUS_OWNER, None));
    }

    #[tokio::test]
    async fn a_key_with_every_slot_taken_is_refused_with_429_too_many_concurrent() {
        let a = admission(|c| c.api_keys = vec![key("a", None, Some(1)), key("b", None, None)]);
        let held = a.acquire_run(Some(0)).await.unwrap();
        assert_refused(
            a.acquire_run(Some(0)).await,
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_concurrent",
        );
        assert_eq!(a.keys_without_a_free_slot(), ["a"]);
        // The other key is not held back; the slot is the key's again once its run ends.
        let other = a.acquire_run(Some(1)).await.unwrap();
        drop((held, other));
        assert!(a.keys_without_a_free_slot().is_empty());
        assert!(a.acquire_run(Some(0)).await.is_ok());
    }

    #[tokio::test]
    async fn every_server_slot_taken_and_the_queue_full_is_503_overloaded() {
        let a = admission(|c| {
            c.max_concurrent = 1;
            c.max_queue = 0;
        });
        let held = a.acquire_run(None).await.unwrap();
        assert_refused(a.acquire_run(None).await, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
        drop(held);
        assert!(a.acquire_run(None).await.is_ok());
    }

    #[tokio::test]
    async fn a_draining_server_admits_no_new_run() {
        let a = admission(|_| {});
        assert!(!a.is_draining());
        a.start_draining();
        assert!(a.is_draining());
        assert_refused(a.acquire_run(None).await, StatusCode::SERVICE_UNAVAILABLE, "draining");
        assert_refused(
            a.acquire_run_with(None).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
        );
        assert_eq!(a.inflight_count(), 0);
    }

    #[tokio::test]
    async fn shutdown_cancels_every_run_in_flight_and_a_finished_run_leaves_the_registry() {
        let a = admission(|_| {});
        let first = a.acquire_run(None).await.unwrap();
        let second = a.acquire_run(None).await.unwrap();
        assert_eq!(a.inflight_count(), 2);
        assert_eq!(a.metrics.active_runs.load(Ordering::Relaxed), 2);
        a.cancel_all();
        assert!(first.cancel.is_cancelled() && second.cancel.is_cancelled());
        drop(first);
        assert_eq!(a.inflight_count(), 1);
        drop(second);
        assert_eq!(a.inflight_count(), 0);
        assert_eq!(a.metrics.active_runs.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn cancelling_an_async_job_reaches_only_a_registered_one() {
        let a = admission(|_| {});
        let (job, other) = (CancelToken::new(), CancelToken::new());
        a.register_job("j1", job.clone());
        a.register_job("j2", other.clone());
        a.cancel_job("j1");
        a.cancel_job("unknown");
        assert!(job.is_cancelled() && !other.is_cancelled());
        a.unregister_job("j2");
        a.cancel_job("j2");
        assert!(!other.is_cancelled());
    }
}
