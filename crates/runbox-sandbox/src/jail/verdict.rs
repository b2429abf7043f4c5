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

    fn limits() -> Limits {
        Limits {
            wall_ms: 1000,
            cpu_ms: 800,
            memory_bytes: 64 << 20,
            output_bytes: 4096,
            ..Limits::default()
        }
    }

    /// What the supervisor saw, in short.
    #[derive(Debug, Default, Clone, Copy)]
    struct Saw {
        stop: Option<StopReason>,
        error: Option<&'static str>,
        end: Option<ProgramEnd>,
        oom_kills: u64,
        cpu_ms: u64,
    }

    impl Saw {
        fn decide(self) -> (Status, Option<String>) {
            let facts = Facts {
                stop: self.stop,
                setup_error: self.error,
                program_end: self.end,
                oom_kills: self.oom_kills,
                cpu_ms: Some(self.cpu_ms),
                pid1_status: "Exited(Pid(7), 0)".to_string(),
            };
            decide(&facts, &limits())
        }
    }

    const SIGKILLED: Option<ProgramEnd> = Some(ProgramEnd::Signal(libc::SIGKILL));

    #[test]
    fn every_status_with_its_message() {
        use StopReason::*;
        let stopped = |reason| Saw {
            stop: Some(reason),
            end: SIGKILLED,
            ..Saw::default()
        };
        let ended = |end, oom_kills, cpu_ms| Saw {
            end: Some(end),
            oom_kills,
            cpu_ms,
            ..Saw::default()
        };
        let cpu = "CPU time limit of 800 ms exceeded";
        let cases = [
            (ended(ProgramEnd::Exit(0), 0, 5), Status::Ok, None),
            (ended(ProgramEnd::Exit(3), 0, 5), Status::ExitedNonzero, None),
            (
                stopped(Timeout),
                Status::Timeout,
                Some("wall time limit of 1000 ms exceeded"),
            ),
            (stopped(CpuLimit), Status::CpuLimit, Some(cpu)),
            // RLIMIT_CPU's signal, or SIGKILL (its hard limit) once the cgroup counted the whole limit.
            (
                ended(ProgramEnd::Signal(libc::SIGXCPU), 0, 5),
                Status::CpuLimit,
                Some(cpu),
            ),
            (
                ended(ProgramEnd::Signal(libc::SIGKILL), 0, 800),
                Status::CpuLimit,
                Some(cpu),
            ),
            (
                ended(ProgramEnd::Signal(libc::SIGKILL), 0, 799),
                Status::Killed,
                Some("killed by signal 9"),
            ),
            (
                ended(ProgramEnd::Signal(libc::SIGKILL), 1, 5),
                Status::MemoryLimit,
                Some("memory limit of 67108864 bytes exceeded"),
            ),
            (
                stopped(OutputLimit),
                Status::OutputLimit,
                Some("output limit of 4096 bytes per stream exceeded"),
            ),
            (stopped(Cancelled), Status::Killed, Some("cancelled by the caller")),
            (
                stopped(SetupTimeout),
                Status::SandboxError,
                Some("the sandbox took too long to start"),
            ),
            (
                Saw {
                    error: Some("mount /proc: EPERM"),
                    ..Saw::default()
                },
                Status::SandboxError,
                Some("mount /proc: EPERM"),
            ),
            (
                Saw::default(),
                Status::SandboxError,
                Some("the sandbox's PID 1 ended without reporting the program's end (Exited(Pid(7), 0))"),
            ),
        ];
        for (saw, status, message) in cases {
            assert_eq!(saw.decide(), (status, message.map(str::to_string)), "{saw:?}");
        }
    }

    #[test]
    fn a_stop_by_the_supervisor_wins_over_a_setup_error_and_an_oom_kill() {
        for (stop, status) in [
            (StopReason::SetupTimeout, Status::SandboxError),
            (StopReason::Timeout, Status::Timeout),
            (StopReason::CpuLimit, Status::CpuLimit),
            (StopReason::OutputLimit, Status::OutputLimit),
            (StopReason::Cancelled, Status::Killed),
        ] {
            let saw = Saw {
                stop: Some(stop),
                error: Some("setup failed"),
                end: SIGKILLED,
                oom_kills: 2,
                cpu_ms: 5,
            };
            assert_eq!(saw.decide().0, status, "{stop:?}");
        }
    }

    #[test]
    fn a_setup_error_wins_over_an_oom_kill_and_an_oom_kill_over_the_programs_end() {
        let exited_0 = Some(ProgramEnd::Exit(0));
        let failed = Saw {
            error: Some("setup failed"),
            end: exited_0,
            oom_kills: 1,
            ..Saw::default()
        };
        assert_eq!(
            failed.decide(),
            (Status::SandboxError, Some("setup failed".to_string()))
        );
        // A program that survived the OOM kill of one of its processes and exited 0 still ran out of memory.
        let oom = Saw {
            end: exited_0,
            oom_kills: 1,
            ..Saw::default()
        };
        assert_eq!(oom.decide().0, Status::MemoryLimit);
    }
}
