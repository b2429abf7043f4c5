//! Stateful sessions: one long-lived sandbox per session with a language worker inside that keeps variables,
//! imports and files between executions. Executions on a session run one at a time, in arrival order; an
//! interrupt (or a cell's timeout) sends SIGINT to the running cell, repeatedly until it stops (an idle session has
//! nothing to interrupt), and a cell that does not yield within the grace period gets the session killed. A reaper
//! ends idle and over-age sessions and frees their processes and workspace.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runbox_sandbox::{probe, Limits, SandboxSpec, SessionEvent, SessionProcess, Status, Workspace};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::paths::ARTEFACT_DIR_NAME;
use crate::request::LimitOverrides;
use crate::{Engine, EngineError};

const PYTHON_WORKER: &str = include_str!("../../../workers/python_worker.py");
const NODE_WORKER: &str = include_str!("../../../workers/node_worker.js");
const BASH_WORKER: &str = include_str!("../../../workers/bash_worker.sh");
const RUBY_WORKER: &str = include_str!("../../../workers/ruby_worker.rb");
const R_WORKER: &str = include_str!("../../../workers/r_worker.R");
const MIB: u64 = 1 << 20;

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("the session is dead: {0}")]
    Dead(String),
    #[error("the session already has {0} executions waiting")]
    Busy(usize),
    #[error("{0}")]
    TooMany(String),
    #[error("language {0} has no sessions")]
    Unsupported(String),
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("the session's worker did not start: {0}")]
    StartFailed(String),
    #[error("file not found")]
    FileNotFound,
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("file: {0}")]
    Io(String),
}

impl SessionError {
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::NotFound => "not_found",
            SessionError::Dead(_) => "session_dead",
            SessionError::Busy(_) => "session_busy",
            SessionError::TooMany(_) => "too_many_sessions",
            SessionError::Unsupported(_) => "sessions_unsupported",
            SessionError::InvalidField { .. } => "invalid_field",
            SessionError::StartFailed(_) => "session_start_failed",
            SessionError::FileNotFound => "not_found",
            SessionError::Engine(e) => e.code(),
            SessionError::Io(_) => "file_error",
        }
    }

    fn invalid(field: &str, message: impl Into<String>) -> SessionError {
        SessionError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Operator settings for sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionLimits {
    pub idle_timeout_s: u64,
    pub max_idle_timeout_s: u64,
    pub max_lifetime_s: u64,
    pub max_per_owner: usize,
    pub max_total: usize,
    /// Executions waiting behind the running one before new ones get `session_busy`.
    pub max_queued: usize,
    /// Time a cell has to stop after SIGINT before the session is killed.
    pub interrupt_grace_ms: u64,
    pub default_timeout_ms: u64,
    pub default_memory_mb: u64,
    /// Bytes of stdout, and of stderr, kept per execution.
    pub output_bytes: usize,
    /// Sessions started ahead of time per language, so that creating one (with default settings) only takes it.
    pub warm: BTreeMap<String, usize>,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle_timeout_s: 600,
            max_idle_timeout_s: 3600,
            max_lifetime_s: 8 * 3600,
            max_per_owner: 64,
            max_total: 2000,
            max_queued: 16,
            interrupt_grace_ms: 2000,
            default_timeout_ms: 30_000,
            default_memory_mb: 512,
            output_bytes: 1 << 20,
            warm: [("python".to_string(), 1)].into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Seconds without executions before the session ends (capped by the operator's maximum).
    #[serde(default)]
    pub idle_timeout_s: Option<u64>,
}

impl Default for CreateSession {
    fn default() -> Self {
        CreateSession {
            language: default_language(),
            env: BTreeMap::new(),
            limits: LimitOverrides::default(),
            idle_timeout_s: None,
        }
    }
}

fn default_language() -> String {
    "python".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Idle,
    Busy,
    Dead,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub id: String,
    pub language: String,
    pub state: SessionState,
    /// Why the session died, when it did.
    pub dead_reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub last_used_at: u64,
    pub executions: u64,
    /// Resident memory of every process of the session.
    pub memory_bytes: u64,
    pub idle_timeout_s: u64,
}

/// One rich output: a MIME type and its data (text, or base64 for binary types such as image/png).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RichOutput {
    pub mime_type: String,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CellError {
    pub name: String,
    pub value: String,
    pub traceback: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    Ok,
    Error,
    Interrupted,
    Timeout,
    Exit,
    MemoryLimit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CellResult {
    pub status: CellStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// The value of the trailing expression, by MIME type (`text/plain` always, richer forms when available).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<BTreeMap<String, String>>,
    /// Rich outputs in order: `display()` calls, figures, then the result's richest forms.
    pub outputs: Vec<RichOutput>,
    pub error: Option<CellError>,
    pub exit_code: Option<i32>,
    pub execution_count: u64,
    pub duration_ms: u64,
}

/// What a running cell produces, as it happens.
#[derive(Debug)]
pub enum CellEvent<'a> {
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
    Display(&'a RichOutput),
}

/// How a language's sessions run: the worker file and its source, the interpreter argv before the worker's path,
/// and extra environment.
struct Worker {
    file: &'static str,
    source: &'static str,
    argv: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

fn worker_for(lang: &str) -> Option<Worker> {
    let (file, source, argv, env): (_, _, &'static [&'static str], &'static [(&'static str, &'static str)]) = match lang
    {
        "python" => ("python_worker.py", PYTHON_WORKER, &["/usr/bin/python3", "-u"], &[]),
        "javascript" => ("node_worker.js", NODE_WORKER, &["/usr/bin/node"], &[]),
        "typescript" => (
            "node_worker.js",
            NODE_WORKER,
            &["/usr/bin/node"],
            &[("RUNBOX_TYPESCRIPT", "1")],
        ),
        "bash" => ("bash_worker.sh", BASH_WORKER, &["/bin/bash"], &[]),
        "ruby" => ("ruby_worker.rb", RUBY_WORKER, &["/usr/bin/ruby"], &[]),
        "r" => ("r_worker.R", R_WORKER, &["/usr/bin/Rscript", "--vanilla"], &[]),
        _ => return None,
    };
    Some(Worker {
        file,
        source,
        argv,
        env,
    })
}

/// Languages with a session worker.
pub fn session_languages() -> &'static [&'static str] {
    &["python", "javascript", "typescript", "bash", "ruby", "r"]
}

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
}

/// Most warm sessions kept per language beyond the configured minimum when demand is high.
const MAX_EXTRA_WARM: usize = 8;

/// How long a cell runs before it is sent SIGINT: while a worker is still setting a cell up, a SIGINT can be lost,
/// or worse (Node's vm briefly lets SIGINT end the process as it enters and leaves a script).
const INTERRUPT_SETTLE: Duration = Duration::from_millis(50);

/// Interrupt state of the running cell.
#[derive(Debug, Default)]
struct Interrupt {
    /// When the cell went to the worker; none between cells.
    cell_sent: Option<Instant>,
    /// When an interrupt (or the cell's timeout) first asked the cell to stop.
    requested: Option<Instant>,
    /// When SIGINT was last sent.
    signalled: Option<Instant>,
}

impl Session {
    /// Sends SIGINT when an interrupt is pending and one is due: once the cell has run for [`INTERRUPT_SETTLE`],
    /// then every `resend` (a SIGINT the worker got while still reading the cell is lost) until the cell ends.
    /// Returns when the next one is due.
    fn signal_if_due(&self, now: Instant, resend: Duration) -> Option<Instant> {
        let mut st = self.interrupt.lock().unwrap_or_else(|e| e.into_inner());
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
        self.dead.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn mark_dead(&self, reason: impl Into<String>) {
        let mut dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        if dead.is_none() {
            *dead = Some(reason.into());
        }
    }

    fn info(&self) -> SessionInfo {
        let dead = self.dead_reason();
        let busy = self.exec_lock.try_lock().is_err();
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
            last_used_at: self.last_used.lock().unwrap_or_else(|e| e.into_inner()).1,
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
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), now_ms());
    }

    /// Complete JSON lines the worker wrote so far.
    fn worker_lines(&self, bytes: &[u8]) -> Vec<serde_json::Value> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            if let Ok(v) = serde_json::from_slice(&line) {
                lines.push(v);
            }
        }
        lines
    }
}

/// Why a session ended, from the jail's report.
fn end_reason(report: &Result<runbox_sandbox::JailReport, String>) -> (CellStatus, String, Option<i32>) {
    match report {
        Ok(r) => match r.status {
            Status::MemoryLimit => (
                CellStatus::MemoryLimit,
                "memory_limit: the session used more memory than allowed".into(),
                None,
            ),
            Status::Ok | Status::ExitedNonzero => (
                CellStatus::Exit,
                format!("exit: the worker exited with code {}", r.exit_code.unwrap_or(0)),
                r.exit_code,
            ),
            Status::Timeout | Status::CpuLimit => (
                CellStatus::Exit,
                "the session reached its maximum lifetime".into(),
                None,
            ),
            Status::Killed => (
                CellStatus::Exit,
                format!("killed: {}", r.message.clone().unwrap_or_default()),
                None,
            ),
            _ => (
                CellStatus::Exit,
                format!("sandbox error: {}", r.message.clone().unwrap_or_default()),
                None,
            ),
        },
        Err(e) => (CellStatus::Exit, format!("lost contact with the sandbox: {e}"), None),
    }
}

fn push_capped(buf: &mut Vec<u8>, data: &[u8], cap: usize, truncated: &mut bool) {
    let room = cap.saturating_sub(buf.len());
    if data.len() > room {
        *truncated = true;
    }
    buf.extend_from_slice(&data[..data.len().min(room)]);
}

fn bundle_of(value: &serde_json::Value) -> Option<BTreeMap<String, String>> {
    value.as_object().map(|o| {
        o.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    })
}

/// The richest form first, `text/plain` last: what a notebook shows.
fn outputs_of(bundle: &BTreeMap<String, String>) -> Vec<RichOutput> {
    let order = [
        "image/png",
        "image/jpeg",
        "image/svg+xml",
        "text/html",
        "text/markdown",
        "application/json",
        "text/latex",
    ];
    let mut out: Vec<RichOutput> = order
        .iter()
        .filter_map(|m| {
            bundle.get(*m).map(|d| RichOutput {
                mime_type: m.to_string(),
                data: d.clone(),
            })
        })
        .collect();
    if out.is_empty() {
        if let Some(text) = bundle.get("text/plain") {
            out.push(RichOutput {
                mime_type: "text/plain".into(),
                data: text.clone(),
            });
        }
    }
    out
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

impl Sessions {
    pub fn new(engine: Arc<Engine>, limits: SessionLimits) -> Sessions {
        Sessions {
            engine,
            limits,
            map: Mutex::new(HashMap::new()),
            warm: Mutex::new(Vec::new()),
            warm_wake: (Mutex::new(false), std::sync::Condvar::new()),
            warm_extra: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    fn lookup(&self, owner: &str, id: &str) -> Result<Arc<Session>, SessionError> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|s| s.owner == owner)
            .cloned()
            .ok_or(SessionError::NotFound)
    }

    pub fn count(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| s.dead_reason().is_none())
            .count()
    }

    /// Starts a session and waits until its worker is ready. Blocking.
    pub fn create(&self, owner: &str, req: &CreateSession) -> Result<SessionInfo, SessionError> {
        let lang = self.engine.resolve(&req.language)?;
        if worker_for(lang.id()).is_none() {
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
        {
            let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            let alive = map.values().filter(|s| s.dead_reason().is_none());
            let (total, mine) = alive.fold((0, 0), |(t, m), s| (t + 1, m + usize::from(s.owner == owner)));
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
        }

        let started = match self.take_warm(lang.id(), req) {
            Some(started) => started,
            None => self.start(lang, req)?,
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
        };
        let info = session.info();
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(session));
        Ok(info)
    }

    /// Starts a sandbox with `lang`'s worker and waits until the worker is ready. Blocking.
    fn start(&self, lang: &runbox_lang::Language, req: &CreateSession) -> Result<Started, SessionError> {
        let Worker {
            file,
            source,
            argv,
            env: extra_env,
        } = worker_for(lang.id()).ok_or_else(|| SessionError::Unsupported(lang.id().to_string()))?;
        let id = crate::jobs_id("sess_");
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
        let worker_rel = Path::new(ARTEFACT_DIR_NAME).join(file);
        workspace
            .write_file(&worker_rel, source.as_bytes())
            .map_err(EngineError::from)?;

        let mut env = lang.env().clone();
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env.extend(req.env.clone());
        let lifetime_ms = self.limits.max_lifetime_s * 1000;
        let limits = Limits {
            wall_ms: lifetime_ms,
            cpu_ms: lifetime_ms.saturating_mul(4),
            memory_bytes: req.limits.memory_mb.unwrap_or(self.limits.default_memory_mb) * MIB,
            processes: req.limits.processes.unwrap_or(64),
            output_bytes: u64::MAX,
            file_size_bytes: req
                .limits
                .file_size_mb
                .map_or(Limits::default().file_size_bytes, |m| m * MIB),
            tmp_bytes: req.limits.tmp_mb.map_or(Limits::default().tmp_bytes, |m| m * MIB),
            open_files: req.limits.open_files.unwrap_or(Limits::default().open_files),
            grace_ms: 200,
        };
        let mut argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        argv.push(format!("/workspace/{}", worker_rel.display()));
        let spec = SandboxSpec {
            id: id.clone(),
            argv,
            env,
            workspace: workspace.path().to_path_buf(),
            extra_paths: lang.sandbox_paths().to_vec(),
            limits,
            policy: self.engine.config().policy.clone(),
            session: true,
            pooled: false,
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
                Ok(SessionEvent::Stdout(b)) | Ok(SessionEvent::Stderr(b)) => noise.extend_from_slice(&b),
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

    /// A warm session of `lang`, if the request asks for nothing but defaults and one is ready.
    fn take_warm(&self, lang: &str, req: &CreateSession) -> Option<Started> {
        if !req.env.is_empty() || req.limits != LimitOverrides::default() {
            return None;
        }
        if !self.limits.warm.contains_key(lang) {
            return None;
        }
        let taken = {
            let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
            let pos = warm.iter().position(|w| w.language == lang && !w.process.has_exited());
            pos.map(|i| warm.swap_remove(i))
        };
        if taken.is_none() {
            let mut extra = self.warm_extra.lock().unwrap_or_else(|e| e.into_inner());
            let entry = extra.entry(lang.to_string()).or_insert((0, Instant::now()));
            entry.0 = (entry.0 + 1).min(MAX_EXTRA_WARM);
            entry.1 = Instant::now();
        }
        self.wake_warm();
        taken
    }

    /// Sessions started ahead of time and waiting for an owner.
    pub fn warm_count(&self) -> usize {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn wake_warm(&self) {
        let (lock, cv) = &self.warm_wake;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_one();
    }

    /// Keeps [`SessionLimits::warm`] sessions started in the background (servers call this once).
    pub fn start_warm(self: &Arc<Self>) {
        if self.limits.warm.values().all(|&n| n == 0) {
            return;
        }
        let sessions = self.clone();
        let _ = std::thread::Builder::new()
            .name("runbox-warm-sessions".into())
            .spawn(move || loop {
                for (lang_id, &min) in &sessions.limits.warm {
                    let want = {
                        let mut extra = sessions.warm_extra.lock().unwrap_or_else(|e| e.into_inner());
                        let entry = extra.entry(lang_id.clone()).or_insert((0, Instant::now()));
                        if entry.0 > 0 && entry.1.elapsed() > Duration::from_secs(60) {
                            *entry = (entry.0 - 1, Instant::now());
                        }
                        min + entry.0
                    };
                    let Ok(lang) = sessions.engine.resolve(lang_id) else {
                        continue;
                    };
                    if !sessions.engine.availability(lang).available {
                        continue;
                    }
                    loop {
                        let have = {
                            let mut warm = sessions.warm.lock().unwrap_or_else(|e| e.into_inner());
                            warm.retain(|w| !w.process.has_exited());
                            warm.iter().filter(|w| &w.language == lang_id).count()
                        };
                        if have >= want {
                            break;
                        }
                        match sessions.start(
                            lang,
                            &CreateSession {
                                language: lang_id.clone(),
                                ..Default::default()
                            },
                        ) {
                            Ok(started) => sessions.warm.lock().unwrap_or_else(|e| e.into_inner()).push(started),
                            Err(_) => break,
                        }
                    }
                }
                let (lock, cv) = &sessions.warm_wake;
                let mut woken = lock.lock().unwrap_or_else(|e| e.into_inner());
                if !*woken {
                    woken = cv
                        .wait_timeout(woken, Duration::from_secs(5))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                *woken = false;
            });
    }

    pub fn info(&self, owner: &str, id: &str) -> Result<SessionInfo, SessionError> {
        Ok(self.lookup(owner, id)?.info())
    }

    pub fn list(&self, owner: &str) -> Vec<SessionInfo> {
        let sessions: Vec<Arc<Session>> = {
            let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.values().filter(|s| s.owner == owner).cloned().collect()
        };
        let mut infos: Vec<SessionInfo> = sessions.iter().map(|s| s.info()).collect();
        infos.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        infos
    }

    /// Ends a session and frees everything it held.
    pub fn delete(&self, owner: &str, id: &str) -> Result<(), SessionError> {
        let session = self.lookup(owner, id)?;
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        session.mark_dead("deleted");
        session.process.terminate();
        Ok(())
    }

    pub fn interrupt(&self, owner: &str, id: &str) -> Result<SessionInfo, SessionError> {
        let session = self.lookup(owner, id)?;
        if let Some(reason) = session.dead_reason() {
            return Err(SessionError::Dead(reason));
        }
        // Idle: there is nothing to interrupt, and a SIGINT still on its way when the next cell starts would
        // interrupt that one.
        if session.exec_lock.try_lock().is_ok() {
            return Ok(session.info());
        }
        let now = Instant::now();
        {
            let mut st = session.interrupt.lock().unwrap_or_else(|e| e.into_inner());
            st.requested.get_or_insert(now);
            st.signalled = None; // asked again: signal again now (once the cell has settled)
        }
        session.signal_if_due(now, Duration::ZERO);
        Ok(session.info())
    }

    /// Runs one cell. Blocking; cells of one session run one at a time, in arrival order.
    pub fn execute(
        &self,
        owner: &str,
        id: &str,
        code: &str,
        timeout_ms: Option<u64>,
        on_event: &mut dyn FnMut(CellEvent<'_>),
    ) -> Result<CellResult, SessionError> {
        let session = self.lookup(owner, id)?;
        let timeout_ms = timeout_ms.unwrap_or(self.limits.default_timeout_ms);
        let cap = self.engine.config().caps.timeout_ms.max(self.limits.default_timeout_ms);
        if timeout_ms == 0 || timeout_ms > cap {
            return Err(SessionError::invalid(
                "timeout_ms",
                format!("must be between 1 and {cap}"),
            ));
        }
        if let Some(reason) = session.dead_reason() {
            return Err(SessionError::Dead(reason));
        }
        // Executions already in: the running one and those queued behind it.
        let waiting = session.waiting.fetch_add(1, Ordering::SeqCst);
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&session.waiting);
        if waiting > self.limits.max_queued {
            return Err(SessionError::Busy(waiting - 1));
        }
        let _turn = session.exec_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reason) = session.dead_reason() {
            return Err(SessionError::Dead(reason));
        }
        session.touch();
        *session.interrupt.lock().unwrap_or_else(|e| e.into_inner()) = Interrupt::default();
        /// Ends the cell's interrupt state however execute returns.
        struct CellEnd<'a>(&'a Session);
        impl Drop for CellEnd<'_> {
            fn drop(&mut self) {
                *self.0.interrupt.lock().unwrap_or_else(|e| e.into_inner()) = Interrupt::default();
            }
        }
        let _cell_end = CellEnd(&session);
        let started = Instant::now();
        // Output that background processes wrote between cells belongs to no cell.
        while let Ok(ev) = session.process.recv_timeout(Duration::ZERO) {
            if let SessionEvent::Ended(report) = ev {
                let (_, reason, _) = end_reason(&report);
                session.mark_dead(reason.clone());
                return Err(SessionError::Dead(reason));
            }
        }
        let cell = session.next_cell.fetch_add(1, Ordering::Relaxed);
        let mut message = format!("EXEC {cell} {}\n", code.len()).into_bytes();
        message.extend_from_slice(code.as_bytes());
        if session.process.send(&message).is_err() {
            session.mark_dead("the worker stopped reading");
            return Err(SessionError::Dead("the worker stopped reading".into()));
        }
        session.interrupt.lock().unwrap_or_else(|e| e.into_inner()).cell_sent = Some(Instant::now());
        session.executions.fetch_add(1, Ordering::Relaxed);

        let cap = self.limits.output_bytes;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let (mut out_cut, mut err_cut) = (false, false);
        let mut outputs = Vec::new();
        let deadline = started + Duration::from_millis(timeout_ms);
        let grace = Duration::from_millis(self.limits.interrupt_grace_ms);
        let mut timed_out = false;
        let mut killed_at: Option<Instant> = None;
        let resend = (grace / 4).clamp(Duration::from_millis(100), Duration::from_millis(500));
        let finish = |status,
                      result: Option<BTreeMap<String, String>>,
                      error,
                      exit_code,
                      count,
                      outputs: Vec<RichOutput>,
                      stdout: &[u8],
                      stderr: &[u8],
                      out_cut,
                      err_cut| CellResult {
            status,
            stdout: String::from_utf8_lossy(stdout).into_owned(),
            stderr: String::from_utf8_lossy(stderr).into_owned(),
            stdout_truncated: out_cut,
            stderr_truncated: err_cut,
            result,
            outputs,
            error,
            exit_code,
            execution_count: count,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        loop {
            let now = Instant::now();
            if !timed_out && now >= deadline {
                timed_out = true;
                let mut st = session.interrupt.lock().unwrap_or_else(|e| e.into_inner());
                st.requested.get_or_insert(now);
            }
            let requested = session.interrupt.lock().unwrap_or_else(|e| e.into_inner()).requested;
            let mut next_signal = None;
            if let Some(at) = requested {
                if killed_at.is_none() && now >= at + grace {
                    session.mark_dead(if timed_out {
                        "timeout: the cell ran past its time limit and did not stop after SIGINT"
                    } else {
                        "interrupt: the cell did not stop after SIGINT"
                    });
                    session.process.terminate();
                    killed_at = Some(now);
                } else if killed_at.is_none() {
                    next_signal = session.signal_if_due(now, resend);
                }
            }
            if killed_at.is_some_and(|k| now >= k + Duration::from_secs(5)) {
                let count = session.executions.load(Ordering::Relaxed);
                let status = if timed_out {
                    CellStatus::Timeout
                } else {
                    CellStatus::Interrupted
                };
                return Ok(finish(
                    status, None, None, None, count, outputs, &stdout, &stderr, out_cut, err_cut,
                ));
            }
            let mut wait = Duration::from_millis(100);
            if !timed_out {
                wait = wait.min(deadline.saturating_duration_since(now));
            }
            if let Some(next) = next_signal {
                wait = wait.min(next.saturating_duration_since(now));
            }
            match session.process.recv_timeout(wait) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    session.mark_dead("lost contact with the sandbox");
                    return Err(SessionError::Dead("lost contact with the sandbox".into()));
                }
                Ok(SessionEvent::Stdout(b)) => {
                    on_event(CellEvent::Stdout(&b));
                    push_capped(&mut stdout, &b, cap, &mut out_cut);
                }
                Ok(SessionEvent::Stderr(b)) => {
                    on_event(CellEvent::Stderr(&b));
                    push_capped(&mut stderr, &b, cap, &mut err_cut);
                }
                Ok(SessionEvent::Ended(report)) => {
                    let (status, reason, exit_code) = end_reason(&report);
                    session.mark_dead(reason);
                    let reason = session.dead_reason().unwrap_or_default();
                    let status = match status {
                        CellStatus::MemoryLimit => CellStatus::MemoryLimit,
                        _ if killed_at.is_some() && timed_out => CellStatus::Timeout,
                        _ if killed_at.is_some() => CellStatus::Interrupted,
                        other => other,
                    };
                    let error = (status != CellStatus::Exit).then(|| CellError {
                        name: "SessionDied".into(),
                        value: reason.clone(),
                        traceback: String::new(),
                    });
                    let count = session.executions.load(Ordering::Relaxed);
                    return Ok(finish(
                        status, None, error, exit_code, count, outputs, &stdout, &stderr, out_cut, err_cut,
                    ));
                }
                Ok(SessionEvent::Worker(bytes)) => {
                    for msg in session.worker_lines(&bytes) {
                        match msg["event"].as_str() {
                            Some("display") => {
                                if let Some(bundle) = bundle_of(&msg["data"]) {
                                    for out in outputs_of(&bundle) {
                                        on_event(CellEvent::Display(&out));
                                        outputs.push(out);
                                    }
                                }
                            }
                            Some("done") if msg["id"].as_u64() == Some(cell) => {
                                let result = bundle_of(&msg["result"]);
                                if let Some(bundle) = &result {
                                    outputs
                                        .extend(outputs_of(bundle).into_iter().filter(|o| o.mime_type != "text/plain"));
                                }
                                let error: Option<CellError> = serde_json::from_value(msg["error"].clone()).ok();
                                let exit_code = msg["exit_code"].as_i64().map(|c| c as i32);
                                let status = match msg["status"].as_str() {
                                    Some("ok") => CellStatus::Ok,
                                    Some("interrupted") if timed_out => CellStatus::Timeout,
                                    Some("interrupted") => CellStatus::Interrupted,
                                    Some("exit") => {
                                        session.mark_dead(format!(
                                            "exit: the code ended the session (exit code {})",
                                            exit_code.unwrap_or(0)
                                        ));
                                        CellStatus::Exit
                                    }
                                    _ => CellStatus::Error,
                                };
                                let count = msg["execution_count"].as_u64().unwrap_or(cell);
                                session.touch();
                                return Ok(finish(
                                    status, result, error, exit_code, count, outputs, &stdout, &stderr, out_cut,
                                    err_cut,
                                ));
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// Ends sessions idle for longer than their idle timeout or older than the maximum lifetime, and forgets
    /// dead sessions after a while. Returns how many it ended.
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        let max_life = Duration::from_secs(self.limits.max_lifetime_s);
        let mut ended = 0;
        let sessions: Vec<Arc<Session>> = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for s in sessions {
            let busy = s.exec_lock.try_lock().is_err();
            let idle_for = now.duration_since(s.last_used.lock().unwrap_or_else(|e| e.into_inner()).0);
            if let Some(_reason) = s.dead_reason() {
                // Collect the ended jail now rather than when the session is forgotten, so no zombie lingers.
                s.process.has_exited();
                if !busy && idle_for > Duration::from_secs(600) {
                    self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(&s.id);
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
        for w in self.warm.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            w.process.terminate();
        }
        let sessions: Vec<Arc<Session>> = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in sessions {
            s.mark_dead("the server shut down");
            s.process.terminate();
        }
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

/// End (exclusive) of the worker's `ready` line in `bytes`, if it is there.
fn ready_line_end(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(pos) = bytes[start..].iter().position(|&b| b == b'\n') {
        let line = &bytes[start..start + pos];
        if serde_json::from_slice::<serde_json::Value>(line).is_ok_and(|v| v["event"] == "ready") {
            return Some(start + pos + 1);
        }
        start += pos + 1;
    }
    None
}
