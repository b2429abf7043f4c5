//! What can wake the supervision loop, as types: which descriptors one `poll` found ready become [`Wake`]s in the
//! one order the loop handles them, and a signal from the host becomes a [`Control`]. Pure, so the order and the
//! meaning of each signal have their own tests.

/// The program's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Stdout,
    Stderr,
}

/// One thing that woke the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    /// The reader of our stdout (the caller) is gone.
    CallerGone,
    /// A signal from the host: see [`Control`].
    HostSignal,
    /// PID 1 has ended.
    Pid1Ended,
    /// PID 1 wrote to its report pipe (the sandbox is built, the program ended, setup failed, all is reaped).
    Pid1Report,
    /// The program wrote to one of its output streams. `all`: forward everything buffered so far, because a
    /// worker message follows that must not overtake it.
    Output { stream: Stream, all: bool },
    /// A session's worker wrote a message.
    WorkerMessage,
    /// Our own stdin has bytes (a warm sandbox's go message, then the program's input) or has closed.
    Input,
    /// The program's stdin has room for the input waiting for it.
    StdinWritable,
}

/// Which descriptors one `poll` found ready.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Readiness {
    pub caller_gone: bool,
    pub signal: bool,
    pub pid1: bool,
    pub report: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub worker: bool,
    pub input: bool,
    pub stdin_writable: bool,
}

impl Readiness {
    /// The wake-ups in the order they are handled. The caller going away and the host's signals come first (a
    /// cancel must win over what the program did meanwhile); PID 1's end before its report, so a report read in
    /// the same wake-up finds PID 1 already reaped; output before the worker message it precedes; the caller's
    /// input before feeding it to the program.
    pub(super) fn in_order(self) -> Vec<Wake> {
        let mut wakes = Vec::with_capacity(8);
        let mut add = |ready: bool, wake: Wake| {
            if ready {
                wakes.push(wake);
            }
        };
        add(self.caller_gone, Wake::CallerGone);
        add(self.signal, Wake::HostSignal);
        add(self.pid1, Wake::Pid1Ended);
        add(self.report, Wake::Pid1Report);
        // Output the worker produced before it wrote a message is forwarded first: the worker flushes its stdout
        // and stderr before replying, so the reply never overtakes the output it concludes.
        let all = self.worker;
        for (ready, stream) in [(self.stdout, Stream::Stdout), (self.stderr, Stream::Stderr)] {
            add(ready || all, Wake::Output { stream, all });
        }
        add(self.worker, Wake::WorkerMessage);
        add(self.input, Wake::Input);
        add(self.stdin_writable, Wake::StdinWritable);
        wakes
    }
}

/// What a signal sent to the jail asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    /// SIGUSR2, which once was a warm sandbox's go: ignored now, so that a stray one neither starts nor ends a run.
    RetiredGo,
    /// SIGUSR1: a session's interrupt, forwarded as SIGINT to every process of the sandbox.
    Interrupt,
    /// Any other (SIGTERM, SIGINT, SIGHUP), or a signal that could not be read: end the run.
    Cancel,
}

impl Control {
    pub(super) fn from_signal(signal: Option<i32>) -> Control {
        match signal {
            // The go is now a message on stdin (a signal's payload can be lost).
            Some(libc::SIGUSR2) => Control::RetiredGo,
            Some(libc::SIGUSR1) => Control::Interrupt,
            _ => Control::Cancel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_ready_is_no_wake() {
        assert_eq!(Readiness::default().in_order(), []);
    }

    #[test]
    fn everything_ready_is_handled_in_one_fixed_order() {
        let all = Readiness {
            caller_gone: true,
            signal: true,
            pid1: true,
            report: true,
            stdout: true,
            stderr: true,
            worker: true,
            input: true,
            stdin_writable: true,
        };
        assert_eq!(
            all.in_order(),
            [
                Wake::CallerGone,
                Wake::HostSignal,
                Wake::Pid1Ended,
                Wake::Pid1Report,
                Wake::Output {
                    stream: Stream::Stdout,
                    all: true
                },
                Wake::Output {
                    stream: Stream::Stderr,
                    all: true
                },
                Wake::WorkerMessage,
                Wake::Input,
                Wake::StdinWritable,
            ]
        );
    }

    #[test]
    fn a_worker_message_first_drains_both_output_streams() {
        let worker = Readiness {
            worker: true,
            ..Readiness::default()
        };
        assert_eq!(
            worker.in_order(),
            [
                Wake::Output {
                    stream: Stream::Stdout,
                    all: true
                },
                Wake::Output {
                    stream: Stream::Stderr,
                    all: true
                },
                Wake::WorkerMessage,
            ]
        );
    }

    #[test]
    fn plain_output_is_forwarded_one_chunk_per_wake_up() {
        let stderr = Readiness {
            stderr: true,
            ..Readiness::default()
        };
        assert_eq!(
            stderr.in_order(),
            [Wake::Output {
                stream: Stream::Stderr,
                all: false
            }]
        );
    }

    #[test]
    fn each_signal_means_one_thing() {
        assert_eq!(Control::from_signal(Some(libc::SIGUSR2)), Control::RetiredGo);
        assert_eq!(Control::from_signal(Some(libc::SIGUSR1)), Control::Interrupt);
        for cancel in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            assert_eq!(Control::from_signal(Some(cancel)), Control::Cancel);
        }
        assert_eq!(Control::from_signal(None), Control::Cancel);
    }
}
