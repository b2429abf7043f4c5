//! A started sandbox as the jail holds it: PID 1 (its pid and pidfd), the jail's ends of the pipes, the signal
//! descriptor and the cgroup, built by `start.rs` (or `from_zygote.rs`) and supervised by `supervise.rs`. It can
//! signal and kill the sandbox, reports on a run that has ended, and kills whatever is left when dropped.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::sys::pidfd_signal;
use super::verdict::{self, ProgramEnd, StopReason};
use crate::cgroup::Cgroup;
use crate::outcome::JailReport;
use crate::spec::Limits;

/// A started sandbox: PID 1 is alive and has been released to build the sandbox.
pub struct Live {
    pub(super) pid1: Pid,
    pub(super) pidfd: OwnedFd,
    /// PID 1 is our child (we cloned it); a zygote's child is not, and is reaped by the zygote's jail.
    pub(super) own_child: bool,
    pub(super) sigfd: SignalFd,
    pub(super) stdin_w: Option<OwnedFd>,
    pub(super) stdout_r: Option<OwnedFd>,
    pub(super) stderr_r: Option<OwnedFd>,
    pub(super) report_r: Option<OwnedFd>,
    /// Session mode: what the worker writes to its fd 4.
    pub(super) worker_r: Option<OwnedFd>,
    /// Pooled mode: one byte written here starts the program.
    pub(super) go_w: Option<OwnedFd>,
    pub(super) cgroup: Option<Cgroup>,
    /// Held open for the jail's whole life; PID 1 learns from it closing that the jail is gone (see
    /// `init::die_with_the_jail` and the zygote's child).
    pub(super) _lifeline: OwnedFd,
    /// Set once PID 1 has ended: it can no longer be signalled.
    pub(super) reaped: bool,
}

/// How a run ended, as the supervision loop saw it: what [`Live::report`] judges.
pub(super) struct Ending {
    pub(super) finished: Instant,
    /// When the limits started counting (the go, for a warm sandbox); `None` if the program never started.
    pub(super) started: Option<Instant>,
    /// The cgroup's CPU time before the go, which the run is not charged.
    pub(super) cpu_baseline: Duration,
    pub(super) stop: Option<StopReason>,
    pub(super) setup_error: Option<String>,
    pub(super) program_end: Option<ProgramEnd>,
    pub(super) pid1_status: Option<WaitStatus>,
    /// Whether stdout and stderr were cut at the output limit.
    pub(super) truncated: [bool; 2],
}

impl Live {
    /// The report on a run that has ended: what the cgroup (or, without one, `getrusage`) measured, and the
    /// verdict on how it ended.
    pub(super) fn report(&self, ending: Ending, limits: &Limits) -> JailReport {
        let Ending {
            finished,
            started,
            cpu_baseline,
            stop,
            setup_error,
            program_end,
            pid1_status,
            truncated,
        } = ending;
        let cgroup = self.cgroup.as_ref();
        // SAFETY: getrusage fills the struct we pass.
        let rusage = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
            ru
        };
        let cpu_ms = cgroup
            .and_then(|c| c.cpu_usage())
            .map(|d| d.saturating_sub(cpu_baseline).as_millis() as u64)
            .or_else(|| {
                let tv = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
                Some(tv(rusage.ru_utime) + tv(rusage.ru_stime))
            });
        let memory_peak_bytes = cgroup
            .and_then(|c| c.memory_peak())
            .or(Some(rusage.ru_maxrss as u64 * 1024));
        let oom_kills = cgroup.map(|c| c.oom_kills()).unwrap_or(0);

        let (exit_code, signal) = match program_end {
            Some(ProgramEnd::Exit(c)) => (Some(c), None),
            Some(ProgramEnd::Signal(s)) => (None, Some(s)),
            None => (None, None),
        };
        let facts = verdict::Facts {
            stop,
            setup_error: setup_error.as_deref(),
            program_end,
            oom_kills,
            cpu_ms,
            pid1_status: format!("{pid1_status:?}"),
        };
        let (status, message) = verdict::decide(&facts, limits);
        JailReport {
            status,
            exit_code,
            signal,
            stdout_truncated: truncated[0],
            stderr_truncated: truncated[1],
            wall_ms: started
                .map(|s| finished.saturating_duration_since(s).as_millis() as u64)
                .unwrap_or(0),
            cpu_ms,
            memory_peak_bytes,
            message,
        }
    }

    /// Signals PID 1 through its pidfd, which cannot reach another process that reused the pid.
    pub(super) fn signal_pid1(&self, signal: Signal) {
        if !self.reaped {
            pidfd_signal(&self.pidfd, signal);
        }
    }

    /// SIGKILL to PID 1 ends its whole PID namespace; the cgroup catches anything that could have escaped it.
    pub(super) fn kill_all(&self) {
        self.signal_pid1(Signal::SIGKILL);
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal_pid1(Signal::SIGKILL);
            if self.own_child {
                let _ = waitpid(self.pid1, None);
            }
        }
        // The cgroup's own drop kills anything left in it and removes it.
        self.cgroup.take();
    }
}
