//! Zygotes: one pre-started Python interpreter per pooled language, in a jail of its own, that forks the warm
//! pools' sandboxes (see `workers/zygote.py`). A warm sandbox then costs a fork and a few mounts instead of a
//! fresh root filesystem and, for Python, an interpreter's start-up; the pools refill fast enough to keep up with
//! back-to-back requests.
//!
//! A zygote starts when its pool first builds and is restarted when it dies. When it cannot start (no Python, no
//! root, an old kernel), its pool builds sandboxes the usual way after a back-off.

use crate::sync::LockOrRecover;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, Resource};
use runbox_lang::Language;
use runbox_sandbox::{
    probe, FromZygote, HostPolicy, Jail, Limits, RunMode, SandboxSpec, SessionEvent, SessionProcess, Workspace,
};

/// The interpreter of a zygote whose children `exec` their language's prelude (the zygote is a Python program).
const PYTHON: &str = "/usr/bin/python3";
/// Where in its workspace a zygote finds its programs.
const ARTEFACTS: &str = crate::paths::ARTEFACT_DIR_NAME;
/// How long a zygote may take to announce itself.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long a language waits after its zygote failed before trying again.
const FAILURE_BACKOFF: Duration = Duration::from_secs(30);
/// A zygote lives as long as the server; these bounds only keep the jail's clocks finite.
const THIRTY_DAYS_MS: u64 = 30 * 24 * 3600 * 1000;

/// This process's hard limit of `resource`, at most `cap`.
fn hard_limit(resource: Resource, cap: u64) -> u64 {
    getrlimit(resource).map(|(_, hard)| hard.min(cap)).unwrap_or(1024)
}

struct Zygote {
    process: SessionProcess,
    /// Holds the zygote's socket; removed with the zygote.
    _workspace: Workspace,
    socket: PathBuf,
}

pub struct Zygotes {
    jail: Jail,
    policy: HostPolicy,
    dir: PathBuf,
    running: Mutex<HashMap<String, Arc<Zygote>>>,
    /// When and why a language's zygote last failed.
    failed: Mutex<HashMap<String, (Instant, String)>>,
    /// Set by [`Zygotes::stop`]: no zygote starts any more.
    stopped: std::sync::atomic::AtomicBool,
}

/// Whether `lang`'s warm sandboxes run their program in the zygote's own interpreter (`pool.in_process` of its
/// file).
fn in_process(lang: &Language) -> bool {
    lang.pool().in_process().is_some()
}

impl Zygotes {
    pub fn new(jail: Jail, policy: HostPolicy, data_dir: &Path) -> Zygotes {
        Zygotes {
            jail,
            policy,
            dir: data_dir.join("runs"),
            running: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// How to build a warm sandbox of `lang` from its zygote, starting the zygote if needed; `None` when there
    /// is no zygote (the sandbox is then built the usual way).
    pub fn for_language(&self, lang: &Language) -> Option<FromZygote> {
        if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        if !probe::is_root() {
            return None; // the jail clones the workspace mount for the zygote's child, which needs root
        }
        let id = lang.id().to_string();
        let existing = self.running.lock_or_recover().get(&id).cloned();
        let zygote = match existing {
            Some(z) if !z.process.has_exited() => z,
            existing => {
                if existing.is_some() {
                    tracing::warn!(language = %id, pid = existing.as_ref().map(|z| z.process.pid()),
                        "a zygote ended unexpectedly; starting a new one");
                }
                let recently_failed = self
                    .failed
                    .lock_or_recover()
                    .get(&id)
                    .is_some_and(|(t, _)| t.elapsed() < FAILURE_BACKOFF);
                if recently_failed {
                    return None;
                }
                match self.start(lang) {
                    Ok(z) => {
                        let z = Arc::new(z);
                        self.running.lock_or_recover().insert(id, z.clone());
                        z
                    }
                    Err(why) => {
                        self.running.lock_or_recover().remove(&id);
                        self.failed.lock_or_recover().insert(id, (Instant::now(), why));
                        return None;
                    }
                }
            }
        };
        Some(FromZygote {
            socket: zygote.socket.clone(),
            in_process: in_process(lang),
        })
    }

    /// Whether `lang`'s zygote is up (it is never started from here).
    pub fn is_running(&self, lang: &str) -> bool {
        let running = self.running.lock_or_recover();
        running.get(lang).is_some_and(|z| !z.process.has_exited())
    }

    /// Host pids of the running zygotes' jails, by language (for tests and diagnostics).
    pub fn jail_pids(&self) -> Vec<(String, u32)> {
        let running = self.running.lock_or_recover();
        running.iter().map(|(k, z)| (k.clone(), z.process.pid())).collect()
    }

    /// Stops `lang`'s zygote and builds without one for a while. A zygote that has itself died (killed from
    /// outside) is not held to blame: it is replaced by the next warm sandbox's build, without the back-off.
    pub fn set_aside(&self, lang: &str) {
        let removed = self.running.lock_or_recover().remove(lang);
        if let Some(z) = removed.filter(|z| z.process.has_exited()) {
            tracing::warn!(language = %lang, pid = z.process.pid(), "a zygote ended unexpectedly; starting a new one");
            return;
        }
        self.failed.lock_or_recover().insert(
            lang.to_string(),
            (Instant::now(), "a sandbox it forked failed to start".into()),
        );
    }

    /// `running`, `not started` or why `lang`'s zygote is unavailable.
    pub fn status(&self, lang: &str) -> String {
        if !probe::is_root() {
            return "unavailable: needs root".into();
        }
        let running = self.running.lock_or_recover();
        if running.get(lang).is_some_and(|z| !z.process.has_exited()) {
            return "running".into();
        }
        match self.failed.lock_or_recover().get(lang) {
            Some((_, why)) => format!("unavailable: {why}"),
            None => "not started".into(),
        }
    }

    /// Stops every zygote (their unused sandboxes die with them).
    pub fn stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::Release);
        self.running.lock_or_recover().clear();
    }

    fn start(&self, lang: &Language) -> Result<Zygote, String> {
        let id = crate::random_id("z");
        let owner = Some(self.policy.host_uid);
        let workspace = Workspace::create(&self.dir, &id, Some(1 << 20), owner).map_err(|e| e.to_string())?;
        // The programs are files in the zygote's workspace, not `-c` arguments: a process listing shows a short
        // command line (`python3 -u /workspace/.runbox/zygote.py ...`) for the zygote and every child it forks.
        let file = |name: &str, content: &str| -> Result<String, String> {
            let relative = Path::new(ARTEFACTS).join(name);
            workspace
                .write_file(&relative, content.as_bytes())
                .map_err(|e| e.to_string())?;
            Ok(format!("/workspace/{}", relative.display()))
        };
        let zygote = runbox_lang::workers::source(runbox_lang::workers::ZYGOTE).ok_or("the zygote is not embedded")?;
        let pool = lang.pool();
        // A zygote whose children run the prelude in process is the language's own interpreter, as its file
        // starts it; the prelude is the file its argv[1] names.
        let mut argv: Vec<String> = match pool.in_process() {
            Some(interpreter) => interpreter.to_vec(),
            None => vec![PYTHON.into(), "-u".into()],
        };
        argv.push(file(runbox_lang::workers::ZYGOTE, zygote)?);
        if in_process(lang) {
            argv.push(file(pool.prelude(), pool.source())?);
        }
        let spec = SandboxSpec {
            id,
            argv,
            env: lang.env().clone(),
            workspace: workspace.path().to_path_buf(),
            extra_paths: lang.sandbox_paths().to_vec(),
            limits: Limits {
                wall_ms: THIRTY_DAYS_MS,
                cpu_ms: THIRTY_DAYS_MS,
                memory_bytes: 256 << 20,
                // Children count here until their jail moves them into their own cgroup.
                processes: 512,
                // Children lower these to their run's limits (a hard limit can only go down): as high as ours.
                file_size_bytes: hard_limit(Resource::RLIMIT_FSIZE, 1 << 50),
                open_files: hard_limit(Resource::RLIMIT_NOFILE, 1 << 16),
                tmp_bytes: 1 << 20,
                // Children are built here (clone, mounts) until their jail moves them into their run's cgroup,
                // where the run's own CPU cap applies: the zygote may use every core so refills keep up.
                cpu_millicores: crate::machine::cores()
                    .saturating_mul(1000)
                    .max(runbox_sandbox::DEFAULT_CPU_MILLICORES),
                ..Limits::default()
            },
            policy: self.policy.clone(),
            mode: RunMode::Zygote,
        };
        let process = self.jail.spawn_session(&spec).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match process.recv_timeout(left) {
                Ok(SessionEvent::Worker(bytes)) if bytes.starts_with(b"{\"ready\": true}") => break,
                Ok(SessionEvent::Ended(report)) => {
                    let why = match report {
                        Ok(r) => r.message.unwrap_or_else(|| format!("ended ({:?})", r.status)),
                        Err(e) => e,
                    };
                    return Err(why);
                }
                Err(_) => return Err("did not start in time".into()),
                Ok(_) => {}
            }
        }
        let socket = workspace.path().join("zygote.sock");
        Ok(Zygote {
            process,
            _workspace: workspace,
            socket,
        })
    }
}
