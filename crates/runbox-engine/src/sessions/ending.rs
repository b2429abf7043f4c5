//! Ending sessions: on request, by the reaper (idle past their timeout, or past the maximum lifetime), and all at
//! once when the host shuts down.

use crate::sync::LockOrRecover;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::session::Session;
use super::{SessionError, Sessions};

impl Sessions {
    /// Ends a session and frees everything it held.
    pub fn delete(&self, owner: &str, id: &str) -> Result<(), SessionError> {
        let session = self.lookup(owner, id)?;
        self.map.lock_or_recover().remove(id);
        session.mark_dead("deleted");
        session.process.terminate();
        Ok(())
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
        self.wake_warm(); // the warm sessions' thread sees it now, not at its next round
        for w in self.warm.lock_or_recover().drain(..) {
            w.process.terminate();
        }
        let sessions: Vec<Arc<Session>> = self.map.lock_or_recover().drain().map(|(_, s)| s).collect();
        for s in sessions {
            s.mark_dead("the server shut down");
            s.process.terminate();
        }
    }
}
