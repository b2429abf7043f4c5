//! Stateful sessions: one long-lived sandbox per session with a language worker inside that keeps variables,
//! imports and files between executions. Executions on a session run one at a time, in arrival order; an
//! interrupt (or a cell's timeout) sends SIGINT to the running cell, repeatedly until it stops (an idle session has
//! nothing to interrupt), and a cell that does not yield within the grace period gets the session killed. A reaper
//! ends idle and over-age sessions and frees their processes and workspace.
//!
//! The manager ([`Sessions`]) is here; `start` starts sessions, `cell` runs their cells, `ending` ends them,
//! `uploads` puts files in them, `warm` keeps some started ahead of time; `session` is one session's state and
//! `worker` the workers' side of the protocol.

use crate::sync::LockOrRecover;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Engine;

mod cell;
mod ending;
mod session;
mod start;
mod types;
mod uploads;
mod warm;
mod worker;

use session::Session;
use start::Started;
pub use types::*;
pub use worker::split_worker_lines;

const MIB: u64 = 1 << 20;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Most warm sessions kept per language beyond the configured minimum when demand is high.
const MAX_EXTRA_WARM: usize = 8;

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
}
