//! Warm pools: per language, sandboxes built ahead of time with the interpreter started and waiting for the go
//! signal, so that a request never waits for namespaces, mounts or an interpreter's start-up. A request takes one
//! (and it is never reused); a background thread refills. Pools grow when requests find them empty and shrink
//! back when demand falls, within configured bounds.

use crate::sync::LockOrRecover;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use runbox_lang::Language;
use runbox_sandbox::{probe, HostPolicy, Jail, Limits, PooledJail, RunMode, SandboxSpec, Workspace};
use serde::{Deserialize, Serialize};

use crate::paths::ARTEFACT_DIR_NAME;
use crate::zygotes::Zygotes;

const MIB: u64 = 1 << 20;

/// Operator settings of the warm pools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    pub enabled: bool,
    /// Warm sandboxes kept per language at least; a language not listed has no pool.
    pub min: BTreeMap<String, usize>,
    /// Most warm sandboxes per language when demand is high.
    pub max_per_language: usize,
    /// A warm sandbox older than this is replaced (seconds).
    pub max_age_s: u64,
    /// Size of each warm sandbox's workspace.
    pub workspace_mb: u64,
    /// Build warm sandboxes by forking a per-language zygote (a pre-started Python interpreter in a jail of its
    /// own) instead of building each from scratch; needs root. Python programs then run in the forked
    /// interpreter itself.
    pub zygote: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            enabled: true,
            min: [
                ("python".to_string(), 2),
                ("javascript".to_string(), 1),
                ("bash".to_string(), 1),
                ("c".to_string(), 1),
                ("cpp".to_string(), 1),
            ]
            .into(),
            max_per_language: 8,
            max_age_s: 600,
            workspace_mb: 64,
            zygote: true,
        }
    }
}

struct Warm {
    jail: PooledJail,
    workspace: Workspace,
    born: Instant,
    /// Forked by the language's zygote (rather than built from scratch).
    zygote: bool,
}

/// A sandbox taken from a pool, ready to go.
pub struct Taken {
    pub jail: PooledJail,
    pub workspace: Workspace,
    /// The sandbox limits it was built with; a request must ask for no others to use it.
    pub limits: Limits,
}

struct Pool {
    lang: Language,
    spec_limits: Limits,
    warm: Mutex<VecDeque<Warm>>,
    target: AtomicUsize,
    min: usize,
    last_miss: Mutex<Instant>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// When a warm sandbox last died before it became ready (a broken runtime): building pauses for a while.
    last_failure: Mutex<Option<Instant>>,
    /// The latest attempt to build a warm sandbox failed (and none built since became ready): readiness reports
    /// a server whose every pool is failing as degraded.
    failing: std::sync::atomic::AtomicBool,
    /// Off when the language's runtime is not installed.
    enabled: std::sync::atomic::AtomicBool,
}

impl Pool {
    /// A warm sandbox failed to start: building pauses for [`FAILURE_BACKOFF`], and the pool counts as failing.
    fn failed(&self) {
        *self.last_failure.lock_or_recover() = Some(Instant::now());
        self.failing.store(true, Ordering::Relaxed);
    }
}

/// Longest wait for a sandbox forked on demand (when the pool was empty) before the request builds its own.
const ON_DEMAND_DEADLINE: Duration = Duration::from_secs(2);
/// How long a pool waits after a warm sandbox failed to start before building again.
const FAILURE_BACKOFF: Duration = Duration::from_secs(30);

/// Sizes of one pool, for metrics and health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolStats {
    pub language: String,
    pub ready: usize,
    pub starting: usize,
    pub target: usize,
    pub hits: u64,
    pub misses: u64,
    /// How warm sandboxes are built: `running` (forked by the language's zygote), `not started`,
    /// `unavailable: <why>` (built from scratch meanwhile); absent when zygotes are turned off.
    pub zygote: Option<String>,
    /// The latest warm sandbox built for this language failed to start (none is ready).
    pub failing: bool,
}

pub struct Pools {
    pools: Vec<Arc<Pool>>,
    config: PoolConfig,
    jail: Jail,
    policy: HostPolicy,
    runs_dir: PathBuf,
    zygotes: Option<Zygotes>,
    wake: (Mutex<bool>, Condvar),
    /// Set by [`Pools::drain`]: nothing is built any more.
    closed: std::sync::atomic::AtomicBool,
    /// Held while the refill thread builds, so that draining waits for a build in progress.
    building: Mutex<()>,
}

impl Pools {
    pub fn new(
        config: PoolConfig,
        langs: Vec<(Language, Limits)>,
        jail: Jail,
        policy: HostPolicy,
        data_dir: &Path,
    ) -> Pools {
        let pools = if config.enabled {
            langs
                .into_iter()
                .filter_map(|(lang, spec_limits)| {
                    let min = *config.min.get(lang.id())?;
                    Some(Arc::new(Pool {
                        lang,
                        spec_limits,
                        warm: Mutex::new(VecDeque::new()),
                        target: AtomicUsize::new(min),
                        min,
                        last_miss: Mutex::new(Instant::now()),
                        hits: AtomicU64::new(0),
                        misses: AtomicU64::new(0),
                        last_failure: Mutex::new(None),
                        failing: std::sync::atomic::AtomicBool::new(false),
                        enabled: std::sync::atomic::AtomicBool::new(true),
                    }))
                })
                .collect()
        } else {
            Vec::new()
        };
        let zygotes =
            (config.zygote && !pools.is_empty()).then(|| Zygotes::new(jail.clone(), policy.clone(), data_dir));
        Pools {
            pools,
            config,
            jail,
            policy,
            runs_dir: data_dir.join("runs"),
            zygotes,
            wake: (Mutex::new(false), Condvar::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
            building: Mutex::new(()),
        }
    }

    fn pool(&self, lang: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| p.lang.id() == lang)
    }

    /// The limits warm sandboxes of `lang` have, if `lang` is pooled.
    pub fn limits_of(&self, lang: &str) -> Option<&Limits> {
        self.pool(lang).map(|p| &p.spec_limits)
    }

    /// A ready warm sandbox of `lang`, if one is waiting. A miss makes the pool grow.
    pub fn take(&self, lang: &str) -> Option<Taken> {
        let pool = self.pool(lang)?;
        let taken = {
            let mut warm = pool.warm.lock_or_recover();
            let pos = warm.iter().position(|w| w.jail.is_ready());
            pos.and_then(|i| warm.remove(i))
        };
        match taken {
            Some(w) => {
                // The refill waits for `refill()` after the request, so building never competes with it.
                pool.hits.fetch_add(1, Ordering::Relaxed);
                Some(Taken {
                    jail: w.jail,
                    workspace: w.workspace,
                    limits: pool.spec_limits.clone(),
                })
            }
            None => {
                pool.misses.fetch_add(1, Ordering::Relaxed);
                *pool.last_miss.lock_or_recover() = Instant::now();
                let t = pool.target.load(Ordering::Relaxed);
                if t < self.config.max_per_language {
                    pool.target.store(t + 1, Ordering::Relaxed);
                }
                self.notify();
                // With a zygote, a sandbox of its own is a fork away: far cheaper than building one from scratch.
                if !self.closed.load(Ordering::Acquire) && self.zygotes.as_ref().is_some_and(|z| z.is_running(lang)) {
                    let w = self.build(pool)?;
                    if w.jail.wait_ready(ON_DEMAND_DEADLINE) {
                        return Some(Taken {
                            jail: w.jail,
                            workspace: w.workspace,
                            limits: pool.spec_limits.clone(),
                        });
                    }
                }
                None
            }
        }
    }

    /// Stops pooling `lang` (its runtime is not installed).
    pub fn disable(&self, lang: &str) {
        if let Some(pool) = self.pool(lang) {
            pool.enabled.store(false, Ordering::Relaxed);
            pool.warm.lock_or_recover().clear();
        }
    }

    /// The languages that have a pool.
    pub fn languages(&self) -> Vec<String> {
        self.pools.iter().map(|p| p.lang.id().to_string()).collect()
    }

    /// Tells the refill thread a warm sandbox was used.
    pub fn refill(&self) {
        self.notify();
    }

    fn notify(&self) {
        let (lock, cv) = &self.wake;
        *lock.lock_or_recover() = true;
        cv.notify_one();
    }

    pub fn stats(&self) -> Vec<PoolStats> {
        self.pools
            .iter()
            .map(|p| {
                let warm = p.warm.lock_or_recover();
                let ready = warm.iter().filter(|w| w.jail.is_ready()).count();
                PoolStats {
                    language: p.lang.id().to_string(),
                    ready,
                    starting: warm.len() - ready,
                    target: p.target.load(Ordering::Relaxed),
                    hits: p.hits.load(Ordering::Relaxed),
                    misses: p.misses.load(Ordering::Relaxed),
                    zygote: self.zygotes.as_ref().map(|z| z.status(p.lang.id())),
                    failing: p.failing.load(Ordering::Relaxed) && ready == 0,
                }
            })
            .collect()
    }

    fn build(&self, pool: &Pool) -> Option<Warm> {
        // Unique across every engine of the host (ids name cgroups and workspaces).
        let id = crate::random_id("w");
        let owner = probe::is_root().then_some(self.policy.host_uid);
        let workspace = Workspace::create(&self.runs_dir, &id, Some(self.config.workspace_mb * MIB), owner).ok()?;
        workspace.create_dir(Path::new(ARTEFACT_DIR_NAME)).ok()?;
        let spec = SandboxSpec {
            id,
            // How the language waits (its file's `[pool]`): Python and Node start their interpreter ahead of time
            // (the expensive part); other languages wait in a small shell that `exec`s their own run command.
            argv: pool.lang.pool().argv(),
            env: pool.lang.env().clone(),
            workspace: workspace.path().to_path_buf(),
            extra_paths: pool.lang.sandbox_paths().to_vec(),
            limits: pool.spec_limits.clone(),
            policy: self.policy.clone(),
            mode: RunMode::Pooled {
                from_zygote: self.zygotes.as_ref().and_then(|z| z.for_language(&pool.lang)),
            },
        };
        let jail = self.jail.spawn_pooled(&spec).ok()?;
        Some(Warm {
            jail,
            workspace,
            born: Instant::now(),
            zygote: spec.mode.from_zygote().is_some(),
        })
    }

    /// One round of upkeep: drop dead and stale sandboxes, shrink idle pools, refill to target.
    fn upkeep(&self) {
        let _building = self.building.lock_or_recover();
        let max_age = Duration::from_secs(self.config.max_age_s);
        for pool in &self.pools {
            {
                let mut warm = pool.warm.lock_or_recover();
                let (mut failed, mut zygote_failed, mut succeeded) = (false, false, false);
                warm.retain(|w| {
                    succeeded |= w.jail.is_ready() || w.jail.was_ready();
                    let dead = w.jail.is_ended();
                    let stale = w.born.elapsed() > max_age;
                    let stuck = !w.jail.is_ready() && w.born.elapsed() > Duration::from_secs(30);
                    let failure = stuck || (dead && !w.jail.was_ready());
                    if w.zygote {
                        zygote_failed |= failure;
                    } else {
                        failed |= failure;
                    }
                    !(dead || stale || stuck)
                });
                if failed {
                    pool.failed();
                }
                if succeeded {
                    pool.failing.store(false, Ordering::Relaxed);
                }
                // A zygote whose children fail is set aside: the pool builds the usual way meanwhile.
                if let Some(zygotes) = self.zygotes.as_ref().filter(|_| zygote_failed) {
                    zygotes.set_aside(pool.lang.id());
                }
            }
            let backing_off = pool
                .last_failure
                .lock_or_recover()
                .is_some_and(|t| t.elapsed() < FAILURE_BACKOFF);
            if backing_off || !pool.enabled.load(Ordering::Relaxed) || self.closed.load(Ordering::Acquire) {
                continue;
            }
            // No miss for a minute: demand fell, shrink one step towards the minimum.
            let quiet = pool.last_miss.lock_or_recover().elapsed() > Duration::from_secs(60);
            let target = pool.target.load(Ordering::Relaxed);
            if quiet && target > pool.min {
                pool.target.store(target - 1, Ordering::Relaxed);
                *pool.last_miss.lock_or_recover() = Instant::now();
            }
            let target = pool.target.load(Ordering::Relaxed);
            loop {
                let have = pool.warm.lock_or_recover().len();
                if have >= target || self.closed.load(Ordering::Acquire) {
                    let mut warm = pool.warm.lock_or_recover();
                    while warm.len() > target {
                        warm.pop_back();
                    }
                    break;
                }
                match self.build(pool) {
                    Some(w) => pool.warm.lock_or_recover().push_back(w),
                    None => {
                        // Not even started (no workspace, no jail process): as much a failure as a dead one.
                        pool.failed();
                        break;
                    }
                }
            }
        }
    }

    /// Starts the refill thread. Without it the pools stay empty (the CLI never starts it). The thread holds the
    /// pools weakly: when the engine goes, so do the pools and their warm sandboxes.
    pub fn start(self: &Arc<Self>) {
        if self.pools.is_empty() {
            return;
        }
        let weak = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("runbox-pools".into())
            .spawn(move || loop {
                let Some(pools) = weak.upgrade() else { return };
                pools.upkeep();
                let (lock, cv) = &pools.wake;
                let mut woken = lock.lock_or_recover();
                if !*woken {
                    woken = cv
                        .wait_timeout(woken, Duration::from_millis(500))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                *woken = false;
            });
    }

    /// Empties every pool (shutdown): their sandboxes are killed.
    pub fn drain(&self) {
        self.closed.store(true, Ordering::Release);
        let _no_build_in_progress = self.building.lock_or_recover();
        for pool in &self.pools {
            pool.target.store(0, Ordering::Relaxed);
            pool.warm.lock_or_recover().clear();
        }
        if let Some(zygotes) = &self.zygotes {
            zygotes.stop();
        }
    }

    /// Why no pool can serve, when there are pools (of installed runtimes) and every one is failing.
    pub fn all_failing(&self) -> Option<String> {
        let enabled: Vec<&Arc<Pool>> = self
            .pools
            .iter()
            .filter(|p| p.enabled.load(Ordering::Relaxed))
            .collect();
        let stats = self.stats();
        let failing = |p: &Pool| stats.iter().any(|s| s.language == p.lang.id() && s.failing);
        if enabled.is_empty() || !enabled.iter().all(|p| failing(p)) {
            return None;
        }
        let names: Vec<&str> = enabled.iter().map(|p| p.lang.id()).collect();
        Some(format!(
            "every warm pool fails to build sandboxes ({})",
            names.join(", ")
        ))
    }

    /// Host pids of the zygotes' jails, by language.
    pub fn zygote_pids(&self) -> Vec<(String, u32)> {
        self.zygotes.as_ref().map(|z| z.jail_pids()).unwrap_or_default()
    }
}

impl Drop for Pools {
    fn drop(&mut self) {
        self.drain();
    }
}
