//! One session as the manager holds it: its sandbox, workspace and bookkeeping, the interrupt state of its running
//! cell, and noticing a worker that ended between cells.

use crate::sync::LockOrRecover;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runbox_sandbox::{SessionEvent, SessionProcess, Workspace};

use super::worker::{split_worker_lines, MAX_WORKER_LINE};
use super::{cell, now_ms, SessionInfo, SessionState};

pub(super) struct Session {
    pub(super) id: String,
    pub(super) owner: String,
    pub(super) language: String,
    pub(super) process: SessionProcess,
    pub(super) workspace: Workspace,
    pub(super) owner_uid: Option<u32>,
    /// The session's memory limit in bytes; uploads count against it too (see [`Sessions::upload`]).
    pub(super) memory_limit: u64,
    pub(super) created_at: u64,
    pub(super) created: Instant,
    pub(super) idle_timeout: Duration,
    pub(super) last_used: Mutex<(Instant, u64)>,
    pub(super) exec_lock: Mutex<()>,
    pub(super) waiting: AtomicUsize,
    pub(super) executions: AtomicU64,
    pub(super) next_cell: AtomicU64,
    pub(super) dead: Mutex<Option<String>>,
    /// The running cell's interrupt.
    pub(super) interrupt: Mutex<Interrupt>,
    /// Worker bytes not yet forming a whole line.
    pub(super) pending: Mutex<Vec<u8>>,
    /// The key's share this session holds (memory and process limits), returned when the session dies.
    pub(super) reservation: Mutex<Option<crate::ledger::Reservation>>,
}

/// How long a cell runs before it is sent SIGINT: while a worker is still setting a cell up, a SIGINT can be lost,
/// or worse (Node's vm briefly lets SIGINT end the process as it enters and leaves a script).
const INTERRUPT_SETTLE: Duration = Duration::from_millis(50);

/// Interrupt state of the running cell. Whether a cell is running is decided here, under this state's lock, and
/// nowhere else: an interrupt accepted while a cell runs is kept until that cell ends (a check of the execution lock
/// could see a cell that had not yet claimed this state, whose claim then erased the interrupt).
#[derive(Debug, Default)]
pub(super) struct Interrupt {
    /// Whether a cell holds the session (from taking its turn until its result); what `busy` means.
    pub(super) in_cell: bool,
    /// When the cell went to the worker; none between cells.
    pub(super) cell_sent: Option<Instant>,
    /// When an interrupt (or the cell's timeout) first asked the cell to stop.
    pub(super) requested: Option<Instant>,
    /// When SIGINT was last sent.
    pub(super) signalled: Option<Instant>,
}

impl Interrupt {
    /// A cell takes the session: it was idle, so nothing is pending.
    pub(super) fn claim(&mut self) {
        *self = Interrupt {
            in_cell: true,
            ..Interrupt::default()
        };
    }

    /// The cell's result is out: the session is idle again and keeps nothing for the next cell.
    pub(super) fn release(&mut self) {
        *self = Interrupt::default();
    }

    /// Asks the running cell to stop; false when no cell runs (the interrupt is then dropped).
    pub(super) fn request(&mut self, now: Instant) -> bool {
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
    pub(super) fn signal_if_due(&self, now: Instant, resend: Duration) -> Option<Instant> {
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

    pub(super) fn dead_reason(&self) -> Option<String> {
        self.dead.lock_or_recover().clone()
    }

    pub(super) fn mark_dead(&self, reason: impl Into<String>) {
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
    pub(super) fn notice_end(&self) {
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

    pub(super) fn info(&self) -> SessionInfo {
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

    pub(super) fn touch(&self) {
        *self.last_used.lock_or_recover() = (Instant::now(), now_ms());
    }

    /// Complete JSON lines the worker wrote so far.
    pub(super) fn worker_lines(&self, bytes: &[u8]) -> Vec<serde_json::Value> {
        let mut pending = self.pending.lock_or_recover();
        split_worker_lines(&mut pending, bytes, MAX_WORKER_LINE)
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
