//! The engine's life on a host, one for every command that runs sandboxes (`runbox serve` through the server,
//! `runbox run`, `runbox mcp`, `runbox doctor`, `runbox languages`), so that none of them forgets a step:
//!
//! 1. [`Host::start`] (blocking): probes the host and decides which protections every run gets ([`assess`]), removes
//!    cgroups jails killed long ago left empty, caps all sandboxes together when asked to (fail closed), builds the
//!    [`Engine`] (which claims its share of the data directory), and sweeps what a dead predecessor left in that
//!    directory — its sandboxes' processes, cgroups, workspaces and mounts — before anything runs;
//! 2. [`Host::first_trial`] and [`Host::start_background`]: the duties its [`Background`] names — a trial sandbox now
//!    and every [`TRIAL_INTERVAL`] (what a probe cannot prove), warm pools and their zygotes, warm sessions, the
//!    reaper of idle and over-age sessions;
//! 3. [`Host::shutdown`] (blocking): stops those duties, ends every session (and a warm one still starting), kills
//!    the warm pools and waits for the jails' teardowns, so that nothing outlives the process.
//!
//! Everything here blocks or runs on threads of its own: it knows nothing of HTTP or of an async runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use runbox_sandbox::probe::{self, HostReport, InForce};
use runbox_sandbox::HostPolicy;

use crate::sessions::{SessionLimits, Sessions};
use crate::sync::LockOrRecover;
use crate::{Engine, EngineConfig, Swept};

/// How often the trial sandbox runs again once the host is up.
pub const TRIAL_INTERVAL: Duration = Duration::from_secs(30);

/// How often the reaper looks for idle and over-age sessions.
const REAP_INTERVAL: Duration = Duration::from_secs(1);

/// How long a shutdown waits for the jails to finish tearing their sandboxes down.
const TEARDOWN_WAIT: Duration = Duration::from_secs(10);

/// How long a shutdown waits for a warm session still starting (it is ended as soon as it is up).
const WARM_START_WAIT: Duration = Duration::from_secs(5);

/// Caps on all sandboxes together: the parent cgroup's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateCaps {
    pub memory_bytes: u64,
    pub processes: u64,
}

/// What each key's sandboxes may reserve together (see [`crate::ledger`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCaps {
    pub memory_bytes: u64,
    pub processes: u64,
}

/// The duties a host carries out in the background once started. A one-shot command needs none of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Background {
    /// A trial sandbox before serving and every [`TRIAL_INTERVAL`] after (readiness).
    pub trials: bool,
    /// Fill the warm pools (those the engine's `PoolConfig` enables).
    pub pools: bool,
    /// Keep [`SessionLimits::warm`] sessions started ahead of time.
    pub warm_sessions: bool,
    /// End idle and over-age sessions.
    pub reaper: bool,
}

impl Background {
    /// Every duty: a server.
    pub const SERVER: Background = Background {
        trials: true,
        pools: true,
        warm_sessions: true,
        reaper: true,
    };
    /// None: a one-shot command (`runbox run`, `runbox doctor`).
    pub const NONE: Background = Background {
        trials: false,
        pools: false,
        warm_sessions: false,
        reaper: false,
    };
}

/// Everything a host is started with.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The engine's configuration; its policy gets the cgroup hierarchies found at start.
    pub engine: EngineConfig,
    /// Limits of the host's sessions.
    pub sessions: SessionLimits,
    /// Caps on all sandboxes together, applied when cgroups are in force (the start fails when they cannot be);
    /// `None`: not capped together.
    pub aggregate: Option<AggregateCaps>,
    /// Each key's share; `None` leaves keys uncapped.
    pub key_caps: Option<KeyCaps>,
    pub background: Background,
}

/// The host as probed, and what every run gets on it under a policy.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub report: HostReport,
    /// The protections in force, or why sandboxes cannot run here.
    pub protections: Result<InForce, String>,
}

/// Probes the host and decides what a run gets under `policy`; records the cgroup hierarchies found in `policy`,
/// so that jails need not read the mount table again for every run.
pub fn assess(policy: &mut HostPolicy) -> Assessment {
    let report = probe::host();
    policy.cgroup_mounts = Some(report.cgroups.clone());
    let protections = probe::decide(&report, policy);
    Assessment { report, protections }
}

/// The latest trial sandbox's result; empty until the first one ran.
#[derive(Default)]
struct Trials {
    latest: RwLock<Option<(Result<(), String>, Instant)>>,
}

pub struct Host {
    engine: Arc<Engine>,
    sessions: Arc<Sessions>,
    assessment: Assessment,
    background: Background,
    trials: Trials,
    /// Set when the host begins to shut down: no new trial sandbox starts.
    stopping: AtomicBool,
    /// Set (and its condition notified) at shutdown: the background threads end.
    stopped: (Mutex<bool>, Condvar),
    /// The thread keeping warm sessions, which a shutdown waits for.
    warm_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Host {
    /// Starts the engine on this host (see the module's steps). Blocking. Sandboxes that cannot run here do not
    /// stop the start (the [`Host::protections`] say why, and every run fails); aggregate caps that cannot be
    /// applied while cgroups are in force do (fail closed), as does a data directory that cannot be prepared.
    pub fn start(config: HostConfig) -> Result<Host, String> {
        let HostConfig {
            mut engine,
            sessions,
            aggregate,
            key_caps,
            background,
        } = config;
        let assessment = assess(&mut engine.policy);
        let cgroups = &assessment.report.cgroups;
        if probe::is_root() {
            let removed = runbox_sandbox::cgroup::remove_empty_leftovers(cgroups, &engine.policy.cgroup_parent);
            if removed > 0 {
                tracing::info!(removed, "removed empty cgroups left by jails that were killed");
            }
        }
        // All of runbox under one parent cgroup, capped as a whole; with cgroups in force and the caps not
        // applicable, the host does not start (fail closed).
        if let (
            Some(caps),
            Ok(InForce {
                cgroup: Some(version), ..
            }),
        ) = (aggregate, &assessment.protections)
        {
            let written = runbox_sandbox::cgroup::limit_parent(
                cgroups,
                *version,
                &engine.policy.cgroup_parent,
                caps.memory_bytes,
                caps.processes,
            )
            .map_err(|e| format!("cannot cap all sandboxes together (aggregate): {e}"))?;
            tracing::info!(
                memory_mb = caps.memory_bytes >> 20,
                processes = caps.processes,
                files = ?written,
                "aggregate caps in force"
            );
        }
        let engine = Arc::new(Engine::new(engine).map_err(|e| e.to_string())?);
        if let Some(caps) = key_caps {
            engine.ledger().set_caps(caps.memory_bytes, caps.processes);
        }
        // What a killed predecessor left (its sandboxes' processes, cgroups and workspaces) goes before anything
        // runs again.
        let swept = engine.sweep_leftovers();
        if swept != Swept::default() {
            tracing::info!(
                cgroups = swept.cgroups,
                workspaces = swept.workspaces,
                "swept the sandboxes left by a runbox that did not shut down"
            );
        }
        let sessions = Arc::new(Sessions::new(engine.clone(), sessions));
        Ok(Host {
            engine,
            sessions,
            assessment,
            background,
            trials: Trials::default(),
            stopping: AtomicBool::new(false),
            stopped: (Mutex::new(false), Condvar::new()),
            warm_thread: Mutex::new(None),
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// The protections every run gets here, or why sandboxes cannot run.
    pub fn protections(&self) -> &Result<InForce, String> {
        &self.assessment.protections
    }

    /// The host as probed at start.
    pub fn report(&self) -> &HostReport {
        &self.assessment.report
    }

    /// Runs one trial sandbox (blocking) and records it; logs when the outcome changes.
    pub fn run_trial(&self) -> Result<(), String> {
        let result = self.engine.trial_sandbox();
        let before = self.latest_trial().map(|(r, _)| r.is_ok());
        match &result {
            Err(e) if before != Some(false) => tracing::error!(
                problem = %e,
                data_dir = %self.engine.config().data_dir.display(),
                "a trial sandbox failed: runs will fail until this is fixed; readiness reports it"
            ),
            Ok(()) if before == Some(false) => tracing::info!("a trial sandbox ran again: sandboxes work"),
            _ => {}
        }
        *self.trials.latest.write().unwrap_or_else(|e| e.into_inner()) = Some((result.clone(), Instant::now()));
        result
    }

    /// The latest trial sandbox's result and how long ago it was taken; `None` before the first.
    pub fn latest_trial(&self) -> Option<(Result<(), String>, Duration)> {
        let latest = self.trials.latest.read().unwrap_or_else(|e| e.into_inner());
        latest.as_ref().map(|(r, at)| (r.clone(), at.elapsed()))
    }

    /// With trials among the duties and sandboxes possible here: the first trial sandbox (blocking), so that
    /// readiness tells the truth from the first request.
    pub fn first_trial(&self) {
        if self.background.trials && self.protections().is_ok() {
            let _ = self.run_trial();
        }
    }

    /// Starts the background duties (each on a thread of its own; pools are probed and filled off the caller's
    /// thread). Call once.
    pub fn start_background(self: &Arc<Self>) {
        let duties = self.background;
        if duties.trials && self.protections().is_ok() {
            self.every(TRIAL_INTERVAL, "runbox-trials", |host| {
                if !host.stopping.load(Ordering::SeqCst) {
                    let _ = host.run_trial();
                }
            });
        }
        if duties.pools {
            // Pools start once their languages are known to be installed (probing them takes a moment).
            let engine = self.engine.clone();
            let _ = std::thread::Builder::new()
                .name("runbox-pools-start".into())
                .spawn(move || engine.start_pools());
        }
        if duties.warm_sessions {
            *self.warm_thread.lock_or_recover() = self.sessions.start_warm();
        }
        if duties.reaper {
            self.every(REAP_INTERVAL, "runbox-reaper", |host| {
                let ended = host.sessions.reap();
                if ended > 0 {
                    tracing::info!(ended, "idle or over-age sessions ended");
                }
            });
        }
    }

    /// Runs `duty` every `interval` on a thread of its own until the host shuts down or is dropped.
    fn every(self: &Arc<Self>, interval: Duration, name: &str, duty: fn(&Host)) {
        let host: Weak<Host> = Arc::downgrade(self);
        let _ = std::thread::Builder::new().name(name.into()).spawn(move || loop {
            {
                let Some(h) = host.upgrade() else { return };
                let (lock, cv) = &h.stopped;
                let stopped = lock.lock_or_recover();
                let (stopped, _) = cv
                    .wait_timeout_while(stopped, interval, |stopped| !*stopped)
                    .unwrap_or_else(|e| e.into_inner());
                if *stopped {
                    return;
                }
            }
            let Some(h) = host.upgrade() else { return };
            duty(&h);
        });
    }

    /// The host begins to shut down: no trial sandbox starts from now on (sessions and pools still serve until
    /// [`Host::shutdown`]).
    pub fn begin_shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Ends every session and every warm session (blocking); none starts after it.
    pub fn end_sessions(&self) {
        self.sessions.close_all();
    }

    /// Stops the background duties, ends every session, kills the warm pools and waits for the jails to finish
    /// tearing their sandboxes down (blocking; at most [`TEARDOWN_WAIT`] for the teardowns), so that nothing
    /// outlives the process. Idempotent.
    pub fn shutdown(&self) {
        self.begin_shutdown();
        {
            let (lock, cv) = &self.stopped;
            *lock.lock_or_recover() = true;
            cv.notify_all();
        }
        self.end_sessions();
        // A warm session still starting is ended once it is up: wait for that (a while), so that no sandbox of
        // ours starts after this returns.
        if let Some(warm) = self.warm_thread.lock_or_recover().take() {
            let deadline = Instant::now() + WARM_START_WAIT;
            while !warm.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if warm.is_finished() {
                let _ = warm.join();
            }
        }
        self.engine.drain_pools();
        runbox_sandbox::wait_for_teardowns(TEARDOWN_WAIT);
    }
}
