//! Stateful sessions: one long-lived sandbox per session with a language worker inside that keeps variables,
//! imports and files between executions. Executions on a session run one at a time, in arrival order; an
//! interrupt (or a cell's timeout) sends SIGINT to the running cell, repeatedly until it stops (an idle session has
//! nothing to interrupt), and a cell that does not yield within the grace period gets the session killed. A reaper
//! ends idle and over-age sessions and frees their processes and workspace.

use crate::sync::LockOrRecover;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runbox_sandbox::{probe, Limits, RunMode, SandboxSpec, SessionEvent, SessionProcess, Workspace};

use crate::paths::ARTEFACT_DIR_NAME;
use crate::{Engine, EngineError};

mod cell;
mod types;
mod warm;
mod worker;

pub use types::*;
use worker::{ready_line_end, worker_for};

const MIB: u64 = 1 << 20;

/// Processes a session may have when its request names no limit.
const SESSION_PROCESSES: u32 = 64;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Session {
    id: String,
    owner: String,
    language: String,
    process: SessionProcess,
    workspace: Workspace,
    owner_uid: Option<u32>,
    /// The session's memory limit in bytes; uploads count against it too (see [`Sessions::upload`]).
    memory_limit: u64,
    created_at: u64,
    created: Instant,
    idle_timeout: Duration,
    last_used: Mutex<(Instant, u64)>,
    exec_lock: Mutex<()>,
    waiting: AtomicUsize,
    executions: AtomicU64,
    next_cell: AtomicU64,
    dead: Mutex<Option<String>>,
    /// The running cell's interrupt.
    interrupt: Mutex<Interrupt>,
    /// Worker bytes not yet forming a whole line.
    pending: Mutex<Vec<u8>>,
    /// The key's share this session holds (memory and process limits), returned when the session dies.
    reservation: Mutex<Option<crate::ledger::Reservation>>,
}

/// Longest worker message kept while its end has not arrived (a cell's PNG figures make the largest ones).
const MAX_WORKER_LINE: usize = 8 << 20;

/// Most warm sessions kept per language beyond the configured minimum when demand is high.
const MAX_EXTRA_WARM: usize = 8;

/// How long a cell runs before it is sent SIGINT: while a worker is still setting a cell up, a SIGINT can be lost,
/// or worse (Node's vm briefly lets SIGINT end the process as it enters and leaves a script).
const INTERRUPT_SETTLE: Duration = Duration::from_millis(50);

/// Interrupt state of the running cell. Whether a cell is running is decided here, under this state's lock, and
/// nowhere else: an interrupt accepted while a cell runs is kept until that cell ends (a check of the execution lock
/// could see a cell that had not yet claimed this state, whose claim then erased the interrupt).
#[derive(Debug, Default)]
struct Interrupt {
    /// Whether a cell holds the session (from taking its turn until its result); what `busy` means.
    in_cell: bool,
    /// When the cell went to the worker; none between cells.
    cell_sent: Option<Instant>,
    /// When an interrupt (or the cell's timeout) first asked the cell to stop.
    requested: Option<Instant>,
    /// When SIGINT was last sent.
    signalled: Option<Instant>,
}

impl Interrupt {
    /// A cell takes the session: it was idle, so nothing is pending.
    fn claim(&mut self) {
        *self = Interrupt {
            in_cell: true,
            ..Interrupt::default()
        };
    }

    /// The cell's result is out: the session is idle again and keeps nothing for the next cell.
    fn release(&mut self) {
        *self = Interrupt::default();
    }

    /// Asks the running cell to stop; false when no cell runs (the interrupt is then dropped).
    fn request(&mut self, now: Instant) -> bool {
        if !self.in_cell {
            return false;
        }
        self.requested.get_or_insert(now);
        self.signalled = None; // asked again: signal again now (once the cell has settled)
        true
    }
}

impl Session {
    /// Sends SIGINT when an interrupt is pending and one is due: once the cell has run for [`INTERRUPT_SETTLE`],
    /// then every `resend` (a SIGINT the worker got while still reading the cell is lost) until the cell ends.
    /// Returns when the next one is due.
    fn signal_if_due(&self, now: Instant, resend: Duration) -> Option<Instant> {
        let mut st = self.interrupt.lock_or_recover();
        let (Some(sent), Some(_)) = (st.cell_sent, st.requested) else {
            return None;
        };
        let due = st.signalled.map_or(sent + INTERRUPT_SETTLE, |last| last + resend);
        if now < due {
            return Some(due);
        }
        self.process.interrupt();
        st.signalled = Some(now);
        Some(now + resend)
    }

    fn dead_reason(&self) -> Option<String> {
        self.dead.lock_or_recover().clone()
    }

    fn mark_dead(&self, reason: impl Into<String>) {
        let mut dead = self.dead.lock_or_recover();
        if dead.is_none() {
            *dead = Some(reason.into());
        }
        drop(dead);
        self.reservation.lock_or_recover().take();
    }

    /// Notices a worker that ended while no cell ran (killed from outside, crashed, out of memory between cells):
    /// the session is then dead at once, as its info and the list say, rather than when the next cell finds out.
    /// Output of an idle session belongs to no cell and is dropped here, as the next cell would drop it.
    fn notice_end(&self) {
        if self.dead_reason().is_some() {
            return;
        }
        let Ok(_idle) = self.exec_lock.try_lock() else {
            return; // the running cell reads the events, and sees the end itself
        };
        while let Ok(ev) = self.process.recv_timeout(Duration::ZERO) {
            if let SessionEvent::Ended(report) = ev {
                let (_, reason, _) = cell::end_reason(&report);
                tracing::warn!(session = %self.id, reason = %reason, "a session's worker ended between cells");
                self.mark_dead(reason);
                self.process.has_exited();
                return;
            }
        }
    }

    fn info(&self) -> SessionInfo {
        self.notice_end();
        let dead = self.dead_reason();
        let busy = self.interrupt.lock_or_recover().in_cell;
        let state = match (&dead, busy) {
            (Some(_), _) => SessionState::Dead,
            (None, true) => SessionState::Busy,
            (None, false) => SessionState::Idle,
        };
        SessionInfo {
            id: self.id.clone(),
            language: self.language.clone(),
            state,
            dead_reason: dead,
            created_at: self.created_at,
            last_used_at: self.last_used.lock_or_recover().1,
            executions: self.executions.load(Ordering::Relaxed),
            memory_bytes: if state == SessionState::Dead {
                0
            } else {
                self.process.rss_bytes()
            },
            idle_timeout_s: self.idle_timeout.as_secs(),
        }
    }

    fn touch(&self) {
        *self.last_used.lock_or_recover() = (Instant::now(), now_ms());
    }

    /// Complete JSON lines the worker wrote so far.
    fn worker_lines(&self, bytes: &[u8]) -> Vec<serde_json::Value> {
        let mut pending = self.pending.lock_or_recover();
        split_worker_lines(&mut pending, bytes, MAX_WORKER_LINE)
    }
}

/// The host's side of the worker protocol: adds `bytes` (any chunk of what the worker wrote) to `pending` and
/// returns the JSON messages completed by it, one per line; lines that are not JSON are skipped. A line longer
/// than `max_line` is dropped rather than held, and one `{"event": "dropped"}` says so. Public for the fuzz
/// targets (`fuzz/`), which feed it arbitrary bytes in arbitrary chunks.
pub fn split_worker_lines(pending: &mut Vec<u8>, bytes: &[u8], max_line: usize) -> Vec<serde_json::Value> {
    // Only the new bytes can end a line: scanning from there keeps a long message (a figure arriving in many
    // frames) linear rather than rescanned with every frame.
    let mut from = pending.len();
    pending.extend_from_slice(bytes);
    let mut lines = Vec::new();
    while let Some(pos) = pending[from..].iter().position(|&b| b == b'\n').map(|p| p + from) {
        let line: Vec<u8> = pending.drain(..=pos).collect();
        from = 0;
        if let Ok(v) = serde_json::from_slice(&line) {
            lines.push(v);
        }
    }
    // A line longer than any message the workers send is dropped, not held (one `dropped` event says so: it
    // was most likely a rich output too large to keep).
    if pending.len() > max_line {
        pending.clear();
        lines.push(serde_json::json!({"event": "dropped"}));
    }
    lines
}

pub struct Sessions {
    engine: Arc<Engine>,
    limits: SessionLimits,
    map: Mutex<HashMap<String, Arc<Session>>>,
    /// Started sessions nobody owns yet, by language (see [`SessionLimits::warm`]).
    warm: Mutex<Vec<Started>>,
    warm_wake: (Mutex<bool>, std::sync::Condvar),
    /// Extra warm sessions per language beyond the configured minimum: grows when creations find none ready,
    /// shrinks back after a quiet minute.
    warm_extra: Mutex<HashMap<String, (usize, Instant)>>,
    /// Set by [`Sessions::close_all`]: no warm session is started after it.
    closed: std::sync::atomic::AtomicBool,
    /// Places held by creations still starting their sandbox, per owner. They count against the caps like live
    /// sessions, so the caps hold however many creations race. Locked only while `map` is held.
    starting: Mutex<HashMap<String, usize>>,
    /// Held while an upload is checked against the quotas and written, so that two uploads cannot both fit.
    uploads: Mutex<()>,
    /// The start and end of every new session id (a cluster node's boot id and `_node`; both empty on one
    /// node): see [`Sessions::set_id_shape`].
    id_shape: std::sync::OnceLock<(String, String)>,
}

/// A place reserved for a session being created; given back on drop (failure), or when the session is inserted.
struct Place<'a> {
    sessions: &'a Sessions,
    owner: String,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut starting = self.sessions.starting.lock_or_recover();
        if let Some(n) = starting.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                starting.remove(&self.owner);
            }
        }
    }
}

/// A sandbox whose worker is ready, not yet handed to an owner.
struct Started {
    id: String,
    language: String,
    process: SessionProcess,
    workspace: Workspace,
    owner_uid: Option<u32>,
    pending: Vec<u8>,
}

/// Bytes a workspace holds: the tmpfs's used blocks when it is one (as root), else the sizes of its files.
fn workspace_bytes(path: &Path) -> u64 {
    if probe::is_root() {
        if let Ok(st) = nix::sys::statvfs::statvfs(path) {
            return (st.blocks() - st.blocks_free()) * st.fragment_size();
        }
    }
    fn walk(dir: &Path, budget: &mut usize) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        let mut total = 0;
        for entry in entries.flatten() {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            match entry.metadata() {
                Ok(m) if m.is_dir() => total += walk(&entry.path(), budget),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
        total
    }
    walk(path, &mut 100_000)
}

impl Sessions {
    pub fn new(engine: Arc<Engine>, limits: SessionLimits) -> Sessions {
        Sessions {
            engine,
            limits,
            map: Mutex::new(HashMap::new()),
            warm: Mutex::new(Vec::new()),
            warm_wake: (Mutex::new(false), std::sync::Condvar::new()),
            warm_extra: Mutex::new(HashMap::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
            starting: Mutex::new(HashMap::new()),
            uploads: Mutex::new(()),
            id_shape: std::sync::OnceLock::new(),
        }
    }

    /// Shapes every session id started from now on: `sess_` + `head` + random hex digits (32 in all) + `suffix`.
    /// A cluster node makes its ids name it (`suffix` = `_node`) and its life (`head` = a random boot id), so that
    /// any node can tell where a session lives, and a restarted node that a session is from its previous life.
    /// Set once, before warm sessions start; later calls are ignored. The id also names the session's sandbox and
    /// workspace: `head` is hex (at most 16 digits), `suffix` at most 26 of `[a-z0-9_-]`.
    pub fn set_id_shape(&self, head: &str, suffix: &str) {
        let _ = self.id_shape.set((head.to_string(), suffix.to_string()));
    }

    /// Sessions running a cell now (a draining server waits for them).
    pub fn busy_count(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| s.exec_lock.try_lock().is_err())
            .count()
    }

    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    fn lookup(&self, owner: &str, id: &str) -> Result<Arc<Session>, SessionError> {
        let map = self.map.lock_or_recover();
        map.get(id)
            .filter(|s| s.owner == owner)
            .cloned()
            .ok_or(SessionError::NotFound)
    }

    pub fn count(&self) -> usize {
        self.map
            .lock_or_recover()
            .values()
            .filter(|s| s.dead_reason().is_none())
            .count()
    }

    /// Starts a session and waits until its worker is ready. Blocking.
    pub fn create(&self, owner: &str, req: &CreateSession) -> Result<SessionInfo, SessionError> {
        let lang = self.engine.resolve(&req.language)?;
        if worker_for(lang).is_none() {
            return Err(SessionError::Unsupported(lang.id().to_string()));
        }
        let availability = self.engine.availability(lang);
        if !availability.available {
            return Err(EngineError::LanguageUnavailable {
                id: lang.id().into(),
                reason: availability.reason.unwrap_or_default(),
            }
            .into());
        }
        let probe = crate::ExecuteRequest {
            language: lang.id().into(),
            code: Some(String::new()),
            env: req.env.clone(),
            limits: req.limits.clone(),
            ..Default::default()
        };
        probe.validate(&self.engine.config().caps)?;
        let idle = req.idle_timeout_s.unwrap_or(self.limits.idle_timeout_s);
        if idle == 0 || idle > self.limits.max_idle_timeout_s {
            return Err(SessionError::invalid(
                "idle_timeout_s",
                format!("must be between 1 and {}", self.limits.max_idle_timeout_s),
            ));
        }
        let place = self.reserve(owner)?;

        let sandbox = self.sandbox_limits(req);
        let capacity = self
            .engine
            .ledger()
            .reserve(owner, sandbox.memory_bytes, u64::from(sandbox.processes))
            .map_err(SessionError::KeyCapacity)?;
        let started = match self.take_warm(lang.id(), req) {
            Some(started) => started,
            // A worker that cannot start within limits the client chose (too few processes for its runtime, say)
            // is the request's fault: 422 naming them, not a server error.
            None => self.start(lang, req).map_err(|e| match e {
                SessionError::StartFailed(why) if req.limits != crate::LimitOverrides::default() => {
                    SessionError::invalid("limits", format!("the session cannot start within these limits: {why}"))
                }
                other => other,
            })?,
        };
        let Started {
            id,
            language,
            process,
            workspace,
            owner_uid,
            pending,
        } = started;
        let session = Session {
            id: id.clone(),
            owner: owner.to_string(),
            language,
            process,
            workspace,
            owner_uid,
            memory_limit: sandbox.memory_bytes,
            created_at: now_ms(),
            created: Instant::now(),
            idle_timeout: Duration::from_secs(idle),
            last_used: Mutex::new((Instant::now(), now_ms())),
            exec_lock: Mutex::new(()),
            waiting: AtomicUsize::new(0),
            executions: AtomicU64::new(0),
            next_cell: AtomicU64::new(1),
            dead: Mutex::new(None),
            interrupt: Mutex::new(Interrupt::default()),
            pending: Mutex::new(pending),
            reservation: Mutex::new(Some(capacity)),
        };
        let info = session.info();
        let mut map = self.map.lock_or_recover();
        map.insert(id, Arc::new(session));
        // The place passes from the creation to the session under one lock: never counted twice, or not at all.
        drop(place);
        Ok(info)
    }

    /// Reserves a place for a new session of `owner`, or says which cap is reached. Live sessions and creations
    /// still starting both count.
    fn reserve(&self, owner: &str) -> Result<Place<'_>, SessionError> {
        let map = self.map.lock_or_recover();
        let mut starting = self.starting.lock_or_recover();
        let alive = map.values().filter(|s| s.dead_reason().is_none());
        let (live_total, live_mine) = alive.fold((0, 0), |(t, m), s| (t + 1, m + usize::from(s.owner == owner)));
        let total = live_total + starting.values().sum::<usize>();
        let mine = live_mine + starting.get(owner).copied().unwrap_or(0);
        if total >= self.limits.max_total {
            return Err(SessionError::TooMany(format!(
                "the server holds its maximum of {total} sessions"
            )));
        }
        if mine >= self.limits.max_per_owner {
            return Err(SessionError::TooMany(format!(
                "this key holds its maximum of {mine} sessions"
            )));
        }
        *starting.entry(owner.to_string()).or_insert(0) += 1;
        Ok(Place {
            sessions: self,
            owner: owner.to_string(),
        })
    }

    /// The sandbox limits of the session `req` asks for: what its sandbox gets and what the key ledger reserves.
    fn sandbox_limits(&self, req: &CreateSession) -> Limits {
        let lifetime_ms = self.limits.max_lifetime_s * 1000;
        crate::limits::session(
            lifetime_ms,
            self.limits.default_memory_mb,
            SESSION_PROCESSES,
            &req.limits,
        )
    }

    /// Starts a sandbox with `lang`'s worker and waits until the worker is ready. Blocking.
    fn start(&self, lang: &runbox_lang::Language, req: &CreateSession) -> Result<Started, SessionError> {
        let worker = worker_for(lang).ok_or_else(|| SessionError::Unsupported(lang.id().to_string()))?;
        let id = match self.id_shape.get() {
            Some((head, suffix)) if head.len() <= 16 => {
                let random = crate::random_id("");
                format!("sess_{head}{}{suffix}", &random[head.len()..])
            }
            _ => crate::random_id("sess_"),
        };
        let owner_uid = probe::is_root().then_some(self.engine.config().policy.host_uid);
        let ws_mb = req.limits.workspace_mb.unwrap_or(256);
        let workspace = Workspace::create(
            &self.engine.config().data_dir.join("sessions"),
            &id,
            Some(ws_mb * MIB),
            owner_uid,
        )
        .map_err(EngineError::from)?;
        workspace
            .create_dir(Path::new(ARTEFACT_DIR_NAME))
            .map_err(EngineError::from)?;
        let worker_rel = Path::new(ARTEFACT_DIR_NAME).join(worker.worker());
        workspace
            .write_file(&worker_rel, worker.source().as_bytes())
            .map_err(EngineError::from)?;

        let mut env = lang.env().clone();
        env.extend(worker.env().clone());
        env.extend(req.env.clone());
        let limits = self.sandbox_limits(req);
        let mut argv: Vec<String> = worker.argv().to_vec();
        argv.push(format!("/workspace/{}", worker_rel.display()));
        let spec = SandboxSpec {
            env,
            extra_paths: lang.sandbox_paths().to_vec(),
            limits,
            policy: self.engine.config().policy.clone(),
            mode: RunMode::Session,
            ..SandboxSpec::new(id.clone(), argv, workspace.path())
        };
        let process = self
            .engine
            .config()
            .jail
            .spawn_session(&spec)
            .map_err(EngineError::from)?;
        let mut pending = Vec::new();
        // Wait for the worker's `ready`; whatever it printed meanwhile is start-up noise.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut noise = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match process.recv_timeout(left) {
                Ok(SessionEvent::Worker(bytes)) => {
                    pending.extend_from_slice(&bytes);
                    if let Some(end) = ready_line_end(&pending) {
                        pending.drain(..end);
                        break;
                    }
                }
                Ok(SessionEvent::Stdout(b)) | Ok(SessionEvent::Stderr(b)) => {
                    if noise.len() < 64 * 1024 {
                        noise.extend_from_slice(&b);
                    }
                }
                Ok(SessionEvent::Overflow) => {
                    process.terminate();
                    return Err(SessionError::StartFailed(
                        "the worker flooded its protocol descriptor".into(),
                    ));
                }
                Ok(SessionEvent::Ended(report)) => {
                    let detail = match &report {
                        Ok(r) => r.message.clone().unwrap_or_else(|| format!("{:?}", r.status)),
                        Err(e) => e.clone(),
                    };
                    let said = String::from_utf8_lossy(&noise[..noise.len().min(2000)]).into_owned();
                    return Err(SessionError::StartFailed(format!("{detail} {said}").trim().to_string()));
                }
                Err(_) => {
                    process.terminate();
                    return Err(SessionError::StartFailed(
                        "the worker did not become ready within 30 s".into(),
                    ));
                }
            }
        }
        Ok(Started {
            id,
            language: lang.id().to_string(),
            process,
            workspace,
            owner_uid,
            pending,
        })
    }

    pub fn info(&self, owner: &str, id: &str) -> Result<SessionInfo, SessionError> {
        Ok(self.lookup(owner, id)?.info())
    }

    pub fn list(&self, owner: &str) -> Vec<SessionInfo> {
        let sessions: Vec<Arc<Session>> = {
            let map = self.map.lock_or_recover();
            map.values().filter(|s| s.owner == owner).cloned().collect()
        };
        let mut infos: Vec<SessionInfo> = sessions.iter().map(|s| s.info()).collect();
        infos.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        infos
    }

    /// Ends a session and frees everything it held.
    pub fn delete(&self, owner: &str, id: &str) -> Result<(), SessionError> {
        let session = self.lookup(owner, id)?;
        self.map.lock_or_recover().remove(id);
        session.mark_dead("deleted");
        session.process.terminate();
        Ok(())
    }

    pub fn interrupt(&self, owner: &str, id: &str) -> Result<SessionInfo, SessionError> {
        let session = self.lookup(owner, id)?;
        if let Some(reason) = session.dead_reason() {
            return Err(SessionError::Dead(reason));
        }
        let now = Instant::now();
        {
            // Idle: there is nothing to interrupt, and a SIGINT still on its way when the next cell starts would
            // interrupt that one.
            let accepted = session.interrupt.lock_or_recover().request(now);
            if !accepted {
                return Ok(session.info());
            }
        }
        session.signal_if_due(now, Duration::ZERO);
        Ok(session.info())
    }

    /// Ends sessions idle for longer than their idle timeout or older than the maximum lifetime, and forgets
    /// dead sessions after a while. Returns how many it ended.
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        let max_life = Duration::from_secs(self.limits.max_lifetime_s);
        let mut ended = 0;
        let sessions: Vec<Arc<Session>> = self.map.lock_or_recover().values().cloned().collect();
        for s in sessions {
            s.notice_end();
            let busy = s.exec_lock.try_lock().is_err();
            let idle_for = now.duration_since(s.last_used.lock_or_recover().0);
            if let Some(_reason) = s.dead_reason() {
                // Collect the ended jail now rather than when the session is forgotten, so no zombie lingers.
                s.process.has_exited();
                if !busy && idle_for > Duration::from_secs(600) {
                    self.map.lock_or_recover().remove(&s.id);
                }
                continue;
            }
            let expired = !busy && idle_for >= s.idle_timeout;
            let too_old = now.duration_since(s.created) >= max_life;
            if expired || too_old {
                s.mark_dead(if too_old {
                    "lifetime: the session reached its maximum lifetime"
                } else {
                    "idle: the session was idle past its idle timeout"
                });
                s.process.terminate();
                ended += 1;
            }
        }
        ended
    }

    /// Ends every session (shutdown).
    pub fn close_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for w in self.warm.lock_or_recover().drain(..) {
            w.process.terminate();
        }
        let sessions: Vec<Arc<Session>> = self.map.lock_or_recover().drain().map(|(_, s)| s).collect();
        for s in sessions {
            s.mark_dead("the server shut down");
            s.process.terminate();
        }
    }

    /// Writes an uploaded file into the session's workspace, charging it to the session and its key. Workspaces
    /// live in memory (a tmpfs each) and the server writes uploads, so the kernel charges them to the server, not
    /// to the session's cgroup: the quotas are checked here instead. After the upload, the session's workspace
    /// holds no more than the session's memory limit, the key's sessions no more than `files_per_key_mb`, and all
    /// sessions no more than `files_total_mb` (a file replaced is counted as freed).
    pub fn upload(&self, owner: &str, id: &str, path: &str, content: &[u8]) -> Result<(), SessionError> {
        let session = self.lookup(owner, id)?;
        if let Some(reason) = session.dead_reason() {
            return Err(SessionError::Dead(reason));
        }
        let _one_at_a_time = self.uploads.lock_or_recover();
        let replaced = crate::files::existing_size(session.workspace.path(), path);
        let (mut mine, mut all) = (0u64, 0u64);
        let sessions: Vec<Arc<Session>> = self
            .map
            .lock_or_recover()
            .values()
            .filter(|s| s.dead_reason().is_none())
            .cloned()
            .collect();
        for s in &sessions {
            let used = workspace_bytes(s.workspace.path());
            all += used;
            if s.owner == owner {
                mine += used;
            }
        }
        let this = workspace_bytes(session.workspace.path());
        let grow = (content.len() as u64).saturating_sub(replaced);
        let checks = [
            (
                this,
                session.memory_limit,
                "this session's workspace (its memory limit)",
            ),
            (
                mine,
                self.limits.files_per_key_mb * MIB,
                "this key's session workspaces",
            ),
            (all, self.limits.files_total_mb * MIB, "the server's session workspaces"),
        ];
        for (used, cap, what) in checks {
            if used.saturating_add(grow) > cap {
                return Err(SessionError::QuotaExceeded(format!(
                    "{what} hold {used} bytes; {} more would pass the maximum of {cap}",
                    grow
                )));
            }
        }
        crate::files::write(session.workspace.path(), path, content, session.owner_uid)?;
        Ok(())
    }

    /// The session's workspace directory and the uid owning its files, for the file routes.
    pub fn workspace(&self, owner: &str, id: &str) -> Result<(std::path::PathBuf, Option<u32>), SessionError> {
        let s = self.lookup(owner, id)?;
        if let Some(reason) = s.dead_reason() {
            return Err(SessionError::Dead(reason));
        }
        Ok((s.workspace.path().to_path_buf(), s.owner_uid))
    }
}

#[cfg(test)]
mod interrupt_tests {
    use super::Interrupt;
    use std::time::Instant;

    #[test]
    fn an_interrupt_accepted_after_the_cell_claimed_the_session_is_kept_until_the_cell_ends() {
        let mut st = Interrupt::default();
        st.claim();
        assert!(st.request(Instant::now()));
        // What the cell does next (record when it went to the worker) keeps the request.
        st.cell_sent = Some(Instant::now());
        assert!(st.requested.is_some());
        st.release();
        assert!(st.requested.is_none() && !st.in_cell);
    }

    #[test]
    fn an_interrupt_while_no_cell_runs_is_dropped_and_never_reaches_the_next_cell() {
        let mut st = Interrupt::default();
        assert!(!st.request(Instant::now()));
        st.claim();
        assert!(st.requested.is_none(), "the next cell starts uninterrupted");
    }
}
