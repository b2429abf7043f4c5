//! The jail's live supervision, on the host side of the namespaces, once PID 1 is started (`start.rs`): relays
//! stdin and output, watches the clocks and the cgroup, and turns what happened into a [`JailReport`].
//!
//! One loop: check the clocks (a deadline passed, the CPU limit hit), stop once the run is over and its output
//! drained, else sleep in `poll` until something happens and handle each [`Wake`] in turn. Every handler is a
//! method of [`Supervisor`], the loop's whole state; the final status is decided once, in `verdict.rs`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};

use super::clock::{Clocks, DRAIN_DEADLINE};
use super::events::{Control, Readiness, Stream, Wake};
use super::live::{Ending, Live};
use super::message::{Pid1Message, Pid1Reader};
use super::poll::PollSet;
use super::sys::{read_chunk, OwnedFdRef};
use super::verdict::{ProgramEnd, StopReason};
use crate::outcome::JailReport;
use crate::protocol::{self, FrameKind, Go};
use crate::spec::{Limits, SandboxSpec};

/// The most read from a pipe at once, and the most of the caller's input held for the program.
const CHUNK: usize = 64 * 1024;

/// Supervises a started sandbox to its end and reports on it.
pub(super) fn supervise(live: &mut Live, spec: &SandboxSpec, out: &mut File) -> JailReport {
    let (ending, limits) = Supervisor::new(live, spec, out).run();
    live.report(ending, &limits)
}

/// The caller, at the other end of our stdout. Once a frame fails to reach it, it is gone and is sent no more.
struct Caller<'a> {
    out: &'a mut File,
    gone: bool,
}

impl Caller<'_> {
    fn send(&mut self, kind: FrameKind, bytes: &[u8]) {
        if !self.gone {
            self.gone = protocol::write_frame(self.out, kind, bytes).is_err();
        }
    }
}

/// What has gone out of one of the program's output streams.
#[derive(Default)]
struct Sent {
    bytes: u64,
    /// Cut at the output limit.
    truncated: bool,
}

/// Of `n` bytes just read from a stream that has passed on `sent`, how many fit in the output limit.
fn within_limit(n: usize, sent: u64, limit: u64) -> usize {
    n.min(limit.saturating_sub(sent) as usize)
}

/// The supervision loop's state: the sandbox, its limits and clocks, and what has happened so far.
struct Supervisor<'a> {
    live: &'a mut Live,
    spec: &'a SandboxSpec,
    caller: Caller<'a>,
    /// The spec's limits; a warm sandbox's go replaces the wall and CPU limits.
    limits: Limits,
    clocks: Clocks,
    /// Why the supervisor ended the run, if it did.
    stop: Option<StopReason>,
    /// SIGKILL has been sent to the whole sandbox.
    killed: bool,
    /// PID 1 has ended, and how.
    pid1_status: Option<WaitStatus>,
    /// PID 1 said every process of the sandbox is dead and reaped; only PID 1 itself remains.
    all_reaped: bool,
    program_end: Option<ProgramEnd>,
    setup_error: Option<String>,
    report_buf: Pid1Reader,
    /// Our stdin has not reached its end.
    input_open: bool,
    /// The caller's input not yet written to the program's stdin.
    pending_stdin: Vec<u8>,
    /// Pooled mode: the go message read so far.
    go_buf: Vec<u8>,
    /// Stdout, then stderr.
    sent: [Sent; 2],
    buf: Vec<u8>,
}

impl<'a> Supervisor<'a> {
    fn new(live: &'a mut Live, spec: &'a SandboxSpec, out: &'a mut File) -> Supervisor<'a> {
        Supervisor {
            live,
            spec,
            caller: Caller { out, gone: false },
            limits: spec.limits.clone(),
            clocks: Clocks::new(),
            stop: None,
            killed: false,
            pid1_status: None,
            all_reaped: false,
            program_end: None,
            setup_error: None,
            report_buf: Pid1Reader::default(),
            input_open: true,
            pending_stdin: Vec::new(),
            go_buf: Vec::new(),
            sent: [Sent::default(), Sent::default()],
            buf: vec![0u8; CHUNK],
        }
    }

    /// Runs the loop until the run is over and its output drained; returns how it ended and the limits it ran
    /// under.
    fn run(mut self) -> (Ending, Limits) {
        loop {
            let now = Instant::now();
            self.check_clocks(now);
            if self.drained(now) {
                break;
            }
            let Some(wakes) = self.wait(now) else {
                continue; // EINTR
            };
            for wake in wakes {
                self.handle(wake);
            }
        }
        let ending = Ending {
            finished: Instant::now(),
            started: self.clocks.started,
            cpu_baseline: self.clocks.cpu_baseline,
            stop: self.stop,
            setup_error: self.setup_error,
            program_end: self.program_end,
            pid1_status: self.pid1_status,
            truncated: [self.sent[0].truncated, self.sent[1].truncated],
        };
        (ending, self.limits)
    }

    fn handle(&mut self, wake: Wake) {
        match wake {
            Wake::CallerGone => self.on_caller_gone(),
            Wake::HostSignal => self.on_host_signal(),
            Wake::Pid1Ended => self.on_pid1_ended(),
            Wake::Pid1Report => self.on_pid1_report(),
            Wake::Output { stream, all } => self.forward_output(stream, all),
            Wake::WorkerMessage => self.forward_worker_message(),
            Wake::Input => self.on_input(),
            Wake::StdinWritable => self.feed_stdin(),
        }
    }

    /// Ends the run for `reason` by killing the whole sandbox, unless it already ended or was already stopped.
    fn end_early(&mut self, reason: StopReason) {
        if self.stop.is_none() && self.pid1_status.is_none() {
            self.stop = Some(reason);
            self.kill();
        }
    }

    /// SIGKILL to the whole sandbox.
    fn kill(&mut self) {
        self.live.kill_all();
        self.killed = true;
    }

    /// The program has ended, by PID 1's word or its own end: a deadline passing while the output drains changes
    /// nothing then.
    fn program_over(&self) -> bool {
        self.pid1_status.is_some() || self.program_end.is_some() || self.all_reaped
    }

    /// A deadline passed or the CPU limit was hit: a timeout is a SIGINT (so a Python program sees
    /// KeyboardInterrupt) and SIGKILL after the grace; anything else is SIGKILL at once.
    fn check_clocks(&mut self, now: Instant) {
        if self.stop.is_none() && !self.program_over() {
            self.stop = self
                .clocks
                .limit_passed(now, Duration::from_millis(self.limits.wall_ms));
            if self.stop.is_none() && self.clocks.cpu_check_due(now) {
                let used = self.live.cgroup.as_ref().and_then(|c| c.cpu_usage());
                let limit = Duration::from_millis(self.limits.cpu_ms);
                if self.clocks.cpu_read(now, used, self.spec.mode.is_session(), limit) {
                    self.stop = Some(StopReason::CpuLimit);
                }
            }
            match self.stop {
                Some(StopReason::Timeout) => {
                    self.live.signal_pid1(Signal::SIGINT);
                    self.clocks.grace = Some(now + Duration::from_millis(self.limits.grace_ms));
                }
                Some(_) => self.kill(),
                None => {}
            }
        }
        if self.clocks.grace.is_some_and(|g| !self.killed && now >= g) {
            self.kill();
        }
    }

    /// The run is over (PID 1 gone, or all its processes reaped) and its output read to the end or out of time.
    fn drained(&self, now: Instant) -> bool {
        if self.pid1_status.is_none() && !self.all_reaped {
            return false;
        }
        let live = &*self.live;
        let done = live.stdout_r.is_none()
            && live.stderr_r.is_none()
            && (live.report_r.is_none() || self.all_reaped)
            && live.worker_r.is_none();
        done || self.clocks.drain.is_some_and(|d| now >= d)
    }

    /// Sleeps until something happens or the next deadline; `None` if the sleep was interrupted.
    fn wait(&mut self, now: Instant) -> Option<Vec<Wake>> {
        let live = &*self.live;
        let raw = |fd: &Option<std::os::fd::OwnedFd>| fd.as_ref().map(|fd| fd.as_raw_fd());
        let mut set = PollSet::default();
        let pid1 = set.watch_some(self.pid1_status.is_none().then(|| live.pidfd.as_raw_fd()), libc::POLLIN);
        let signal = set.watch(live.sigfd.as_raw_fd(), libc::POLLIN);
        let stdout = set.watch_some(raw(&live.stdout_r), libc::POLLIN);
        let stderr = set.watch_some(raw(&live.stderr_r), libc::POLLIN);
        let report = set.watch_some(raw(&live.report_r), libc::POLLIN);
        let worker = set.watch_some(raw(&live.worker_r), libc::POLLIN);
        let input = set.watch_some(
            (self.input_open && self.pending_stdin.len() < CHUNK).then_some(0),
            libc::POLLIN,
        );
        let stdin_w = set.watch_some(
            raw(&live.stdin_w).filter(|_| !self.pending_stdin.is_empty()),
            libc::POLLOUT,
        );
        // Our stdout reports an error once its reader (the caller) is gone, even while the program is silent: a
        // caller that died (a server killed outright) must not leave its run going on for nobody.
        let caller = set.watch_some((!self.caller.gone).then(|| self.caller.out.as_raw_fd()), 0);

        let wall = Duration::from_millis(self.limits.wall_ms);
        let deadline = self.clocks.next_deadline(wall, !self.killed);
        if !set.wait(deadline.map(|d| d.saturating_duration_since(now))) {
            return None;
        }
        let ready = Readiness {
            caller_gone: set.ready(caller),
            signal: set.ready(Some(signal)),
            pid1: set.ready(pid1),
            report: set.ready(report),
            stdout: set.ready(stdout),
            stderr: set.ready(stderr),
            worker: set.ready(worker),
            input: set.ready(input),
            stdin_writable: set.ready(stdin_w),
        };
        Some(ready.in_order())
    }

    fn on_caller_gone(&mut self) {
        self.caller.gone = true;
        self.end_early(StopReason::Cancelled);
    }

    fn on_host_signal(&mut self) {
        let info = self.live.sigfd.read_signal().ok().flatten();
        match Control::from_signal(info.map(|s| s.ssi_signo as i32)) {
            Control::RetiredGo => {}
            Control::Interrupt => {
                if self.pid1_status.is_none() {
                    self.live.signal_pid1(Signal::SIGINT);
                }
            }
            Control::Cancel => self.end_early(StopReason::Cancelled),
        }
    }

    /// PID 1's pidfd turned readable. Our own child is waited for; a zygote's child is reaped by the zygote's
    /// jail, and its pidfd turning readable is all there is to know (the report pipe says how the program ended).
    fn on_pid1_ended(&mut self) {
        let live = &mut *self.live;
        let status = if live.own_child {
            waitpid(live.pid1, None).ok()
        } else {
            Some(WaitStatus::Exited(live.pid1, 0))
        };
        if let Some(status) = status {
            live.reaped = true;
            self.pid1_status = Some(status);
            self.clocks.drain = Some(Instant::now() + DRAIN_DEADLINE);
            // PID 1 is gone, so the kernel is killing its namespace; make sure of it through the cgroup.
            if let Some(cg) = &live.cgroup {
                cg.kill_all();
            }
            live.stdin_w = None;
        }
    }

    fn on_pid1_report(&mut self) {
        let Some(fd) = self.live.report_r.as_ref() else { return };
        let messages = match read_chunk(fd, &mut self.buf) {
            Some(0) => {
                self.live.report_r = None;
                Vec::new()
            }
            Some(n) => self.report_buf.push(&self.buf[..n]),
            None => Vec::new(),
        };
        for message in messages {
            match message {
                Pid1Message::Running => self.on_sandbox_built(),
                Pid1Message::Exit(code) => self.program_end = Some(ProgramEnd::Exit(code)),
                Pid1Message::Signal(signal) => self.program_end = Some(ProgramEnd::Signal(signal)),
                Pid1Message::Error(text) => self.setup_error = Some(text),
                Pid1Message::Reaped => {
                    self.all_reaped = true;
                    self.clocks.drain.get_or_insert(Instant::now() + DRAIN_DEADLINE);
                }
            }
        }
    }

    /// PID 1 built the sandbox: the program starts now, or a warm sandbox tells the caller it is ready for a go.
    fn on_sandbox_built(&mut self) {
        self.clocks.running = Some(Instant::now());
        if self.spec.mode.is_pooled() {
            self.caller.send(FrameKind::Ready, &[]);
        } else {
            // The program's CPU time counts from here, as its wall time does: what PID 1 spent building the
            // sandbox is not the program's. Counted in, it let a one-threaded spin reach a CPU limit equal to its
            // wall limit first, so a run given only a timeout ended now `timeout`, now `cpu_limit`.
            self.clocks.go(self.cpu_used());
            self.clocks.started = self.clocks.running;
        }
    }

    /// The sandbox's CPU time so far (zero without a CPU counter).
    fn cpu_used(&self) -> Duration {
        self.live
            .cgroup
            .as_ref()
            .and_then(|c| c.cpu_usage())
            .unwrap_or_default()
    }

    /// Forwards what the program wrote to `stream`, cut at the output limit: normally one chunk per wake-up;
    /// with `all` (a worker message follows), everything buffered so far.
    fn forward_output(&mut self, stream: Stream, all: bool) {
        loop {
            let slot = match stream {
                Stream::Stdout => &mut self.live.stdout_r,
                Stream::Stderr => &mut self.live.stderr_r,
            };
            let Some(fd) = slot.as_ref() else { break };
            let n = match read_chunk(fd, &mut self.buf) {
                Some(0) => {
                    *slot = None;
                    break;
                }
                Some(n) => n,
                None => break,
            };
            if !self.relay_chunk(stream, n) || !all {
                break;
            }
        }
    }

    /// Sends the first `n` bytes of the buffer as `stream`'s output, as far as the output limit allows. False
    /// when the limit cut them (the run ends with it).
    fn relay_chunk(&mut self, stream: Stream, n: usize) -> bool {
        let (i, kind) = match stream {
            Stream::Stdout => (0, FrameKind::Stdout),
            Stream::Stderr => (1, FrameKind::Stderr),
        };
        let keep = within_limit(n, self.sent[i].bytes, self.limits.output_bytes);
        if keep > 0 && !self.caller.gone {
            self.caller.send(kind, &self.buf[..keep]);
            if self.caller.gone {
                self.end_early(StopReason::Cancelled);
            }
        }
        self.sent[i].bytes += keep as u64;
        if n > keep {
            self.sent[i].truncated = true;
            self.end_early(StopReason::OutputLimit);
            return false;
        }
        true
    }

    fn forward_worker_message(&mut self) {
        let Some(fd) = self.live.worker_r.as_ref() else { return };
        match read_chunk(fd, &mut self.buf) {
            Some(0) => self.live.worker_r = None,
            Some(n) => self.caller.send(FrameKind::Worker, &self.buf[..n]),
            None => {}
        }
    }

    /// Our stdin: a warm sandbox's first input is its go message (the limits, then the program may run); what
    /// follows is the program's stdin.
    fn on_input(&mut self) {
        let room = CHUNK - self.pending_stdin.len();
        match read_chunk(&OwnedFdRef(0).owned(), &mut self.buf[..room]) {
            Some(0) => self.on_input_closed(),
            Some(n) if self.live.go_w.is_some() => self.on_go_bytes(n),
            Some(n) if self.live.stdin_w.is_some() => self.pending_stdin.extend_from_slice(&self.buf[..n]),
            // The program closed its stdin: ours is still drained so the caller never blocks.
            Some(_) => {}
            None => {}
        }
        if !self.input_open && self.pending_stdin.is_empty() {
            self.live.stdin_w = None;
        }
    }

    /// Our stdin reached its end. A warm sandbox whose caller went away before using it has no one to run for,
    /// and a session (or a zygote) whose owner closed its input has no one to serve: the owner may have died
    /// without ending it.
    fn on_input_closed(&mut self) {
        self.input_open = false;
        let mode = &self.spec.mode;
        if (mode.is_pooled() && self.clocks.started.is_none()) || mode.is_session() {
            self.end_early(StopReason::Cancelled);
        }
    }

    fn on_go_bytes(&mut self, n: usize) {
        self.go_buf.extend_from_slice(&self.buf[..n]);
        match protocol::decode_go(&self.go_buf) {
            Ok(None) => {}
            Ok(Some((go, used))) => self.on_go(go, used),
            Err(e) => {
                // Limits that did not arrive intact: the program never starts. The sandbox is killed before the
                // go pipe closes, since that end of file would release a program waiting on it.
                if self.stop.is_none() && self.pid1_status.is_none() {
                    self.setup_error = Some(format!("the run's limits did not arrive: {e}"));
                    self.kill();
                }
                self.live.go_w = None;
            }
        }
    }

    /// A warm sandbox's go, whose message took the first `used` bytes of the go buffer: the run's limits, the
    /// acknowledgement, then the program is let go at normal priority.
    fn on_go(&mut self, go: Go, used: usize) {
        self.limits.wall_ms = go.wall_ms;
        self.limits.cpu_ms = go.cpu_ms;
        let ack = serde_json::to_vec(&go).expect("a go always serialises");
        self.caller.send(FrameKind::Started, &ack);
        self.clocks.go(self.cpu_used());
        let go_w = self.live.go_w.take().expect("checked");
        let _ = nix::unistd::write(&go_w, &[1]);
        // Normal priority again, right after the program was let go.
        if let Some(cg) = &self.live.cgroup {
            for pid in cg.pids().into_iter().chain([0]) {
                // SAFETY: setpriority on a process of our sandbox (or ourselves, pid 0).
                unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, 0) };
            }
        }
        // What followed the message is the program's stdin.
        let rest = self.go_buf.split_off(used);
        if self.live.stdin_w.is_some() {
            self.pending_stdin.extend_from_slice(&rest);
        }
    }

    /// The program's stdin has room: write what is pending. The pipe may be gone since the poll: PID 1 ending in
    /// this same wake-up drops it. That is the usual end of a program that exits without reading its input, so it
    /// is no error.
    fn feed_stdin(&mut self) {
        let Some(fd) = self.live.stdin_w.as_ref() else { return };
        match nix::unistd::write(fd, &self.pending_stdin) {
            Ok(n) => {
                self.pending_stdin.drain(..n);
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => {
                self.pending_stdin.clear();
                self.live.stdin_w = None;
            }
        }
        if !self.input_open && self.pending_stdin.is_empty() {
            self.live.stdin_w = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_exactly_at_the_limit() {
        assert_eq!(within_limit(10, 0, 100), 10);
        assert_eq!(within_limit(10, 95, 100), 5);
        assert_eq!(within_limit(10, 100, 100), 0);
        // Already past it (cannot happen, but must not underflow).
        assert_eq!(within_limit(10, 150, 100), 0);
        assert_eq!(within_limit(0, 0, 0), 0);
    }
}
