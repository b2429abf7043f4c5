//! Starting a session: the request's checks, a place under the caps (held while the sandbox starts, so racing
//! creations cannot pass them), the key's share of memory and processes, and a sandbox whose worker is ready
//! (a warm one when the request allows, else a new one).

use crate::sync::LockOrRecover;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runbox_sandbox::{probe, Limits, RunMode, SandboxSpec, SessionEvent, SessionProcess, Workspace};

use super::session::{Interrupt, Session};
use super::worker::{ready_line_end, worker_for};
use super::{now_ms, CreateSession, SessionError, SessionInfo, Sessions, MIB};
use crate::paths::ARTEFACT_DIR_NAME;
use crate::EngineError;

/// Processes a session may have when its request names no limit.
const SESSION_PROCESSES: u32 = 64;

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
pub(super) struct Started {
    pub(super) id: String,
    pub(super) language: String,
    pub(super) process: SessionProcess,
    pub(super) workspace: Workspace,
    pub(super) owner_uid: Option<u32>,
    pub(super) pending: Vec<u8>,
}

impl Sessions {
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
    pub(super) fn start(&self, lang: &runbox_lang::Language, req: &CreateSession) -> Result<Started, SessionError> {
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
}
