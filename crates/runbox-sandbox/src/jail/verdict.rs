//! How a run ended, decided once from everything the supervisor saw: the first limit that stopped the program wins,
//! then a setup failure, then an OOM kill, then the program's own end.

use crate::outcome::Status;
use crate::spec::Limits;

/// Why the supervisor ended the run early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Timeout,
    CpuLimit,
    OutputLimit,
    Cancelled,
    SetupTimeout,
}

/// How the program itself ended, as PID 1 reported it.
#[derive(Debug, Clone, Copy)]
pub enum ProgramEnd {
    Exit(i32),
    Signal(i32),
}

/// What the supervisor saw of a run.
pub struct Facts<'a> {
    pub stop: Option<StopReason>,
    pub setup_error: Option<&'a str>,
    pub program_end: Option<ProgramEnd>,
    pub oom_kills: u64,
    pub cpu_ms: Option<u64>,
    /// How PID 1 itself ended, for the message when it reported nothing.
    pub pid1_status: String,
}

/// The run's status and, when it is not a plain exit, what happened in words.
pub fn decide(f: &Facts<'_>, limits: &Limits) -> (Status, Option<String>) {
    let cpu_over = f.cpu_ms.is_some_and(|c| c >= limits.cpu_ms);
    match (f.stop, f.setup_error, f.program_end) {
        (Some(StopReason::SetupTimeout), _, _) => (
            Status::SandboxError,
            Some("the sandbox took too long to start".to_string()),
        ),
        (Some(StopReason::Timeout), _, _) => (
            Status::Timeout,
            Some(format!("wall time limit of {} ms exceeded", limits.wall_ms)),
        ),
        (Some(StopReason::CpuLimit), _, _) => (
            Status::CpuLimit,
            Some(format!("CPU time limit of {} ms exceeded", limits.cpu_ms)),
        ),
        (Some(StopReason::OutputLimit), _, _) => (
            Status::OutputLimit,
            Some(format!(
                "output limit of {} bytes per stream exceeded",
                limits.output_bytes
            )),
        ),
        (Some(StopReason::Cancelled), _, _) => (Status::Killed, Some("cancelled by the caller".to_string())),
        (None, Some(error), _) => (Status::SandboxError, Some(error.to_string())),
        (None, None, _) if f.oom_kills > 0 => (
            Status::MemoryLimit,
            Some(format!("memory limit of {} bytes exceeded", limits.memory_bytes)),
        ),
        (None, None, Some(ProgramEnd::Exit(0))) => (Status::Ok, None),
        (None, None, Some(ProgramEnd::Exit(_))) => (Status::ExitedNonzero, None),
        (None, None, Some(ProgramEnd::Signal(s))) if s == libc::SIGXCPU || (s == libc::SIGKILL && cpu_over) => (
            Status::CpuLimit,
            Some(format!("CPU time limit of {} ms exceeded", limits.cpu_ms)),
        ),
        (None, None, Some(ProgramEnd::Signal(s))) => (Status::Killed, Some(format!("killed by signal {s}"))),
        (None, None, None) => (
            Status::SandboxError,
            Some(format!(
                "the sandbox's PID 1 ended without reporting the program's end ({})",
                f.pid1_status
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(stop: Option<StopReason>, end: Option<ProgramEnd>, oom_kills: u64) -> Facts<'static> {
        Facts {
            stop,
            setup_error: None,
            program_end: end,
            oom_kills,
            cpu_ms: Some(5),
            pid1_status: String::new(),
        }
    }

    #[test]
    fn the_first_stop_wins_over_what_followed() {
        let l = Limits::default();
        assert_eq!(
            decide(&facts(Some(StopReason::Timeout), Some(ProgramEnd::Signal(9)), 1), &l).0,
            Status::Timeout
        );
        assert_eq!(
            decide(&facts(None, Some(ProgramEnd::Signal(9)), 1), &l).0,
            Status::MemoryLimit
        );
        assert_eq!(
            decide(&facts(None, Some(ProgramEnd::Exit(0)), 0), &l),
            (Status::Ok, None)
        );
        assert_eq!(
            decide(&facts(None, Some(ProgramEnd::Exit(2)), 0), &l).0,
            Status::ExitedNonzero
        );
        assert_eq!(
            decide(&facts(None, Some(ProgramEnd::Signal(libc::SIGXCPU)), 0), &l).0,
            Status::CpuLimit
        );
        assert_eq!(
            decide(&facts(None, Some(ProgramEnd::Signal(11)), 0), &l).0,
            Status::Killed
        );
        assert_eq!(decide(&facts(None, None, 0), &l).0, Status::SandboxError);
    }
}
