//! The jail's live supervision, on the host side of the namespaces, once PID 1 is started (`start.rs`): relays
//! stdin and output, watches the clocks and the cgroup, and turns what happened into a [`JailReport`].

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::message::{Pid1Message, Pid1Reader};
use super::sys::{pidfd_signal, read_chunk, OwnedFdRef};
use super::verdict::{self, ProgramEnd, StopReason};
use crate::cgroup::Cgroup;
use crate::outcome::JailReport;
use crate::protocol::{self, FrameKind};
use crate::spec::{Limits, SandboxSpec};

/// Longest time PID 1 may take to build the sandbox before the run is abandoned.
const SETUP_DEADLINE: Duration = Duration::from_secs(10);
/// How often the cgroup's CPU counter is read when a CPU limit applies.
const CPU_POLL: Duration = Duration::from_millis(20);
/// The slowest pace of those reads in a session that uses no CPU (the per-process RLIMIT_CPU stays a backstop).
const IDLE_CPU_POLL: Duration = Duration::from_millis(640);
/// How long output may keep flowing after PID 1 is gone (only already-buffered bytes remain by then).
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);
const CHUNK: usize = 64 * 1024;

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

struct Stream {
    kind: FrameKind,
    sent: u64,
    truncated: bool,
}

/// How a run ended, as the supervision loop saw it: what [`Live::report`] judges.
struct Ending {
    finished: Instant,
    /// When the limits started counting (the go, for a warm sandbox); `None` if the program never started.
    started: Option<Instant>,
    /// The cgroup's CPU time before the go, which the run is not charged.
    cpu_baseline: Duration,
    stop: Option<StopReason>,
    setup_error: Option<String>,
    program_end: Option<ProgramEnd>,
    pid1_status: Option<WaitStatus>,
    /// Whether stdout and stderr were cut at the output limit.
    truncated: [bool; 2],
}

impl Live {
    pub(super) fn supervise(&mut self, spec: &SandboxSpec, out: &mut File) -> JailReport {
        let mut limits = spec.limits.clone();
        let launched = Instant::now();
        // `running`: PID 1 built the sandbox. `started`: the limits count from here (the go signal when pooled).
        let mut running: Option<Instant> = None;
        let mut started: Option<Instant> = None;
        let mut cpu_baseline = Duration::ZERO;
        let mut stop: Option<StopReason> = None;
        let mut grace_deadline: Option<Instant> = None;
        let mut killed = false;
        let mut pid1_status: Option<WaitStatus> = None;
        // PID 1 said every process of the sandbox is dead and reaped; only PID 1 itself remains.
        let mut all_reaped = false;
        let mut drain_deadline: Option<Instant> = None;
        let mut program_end: Option<ProgramEnd> = None;
        let mut setup_error: Option<String> = None;
        let mut report_buf = Pid1Reader::default();
        let mut input_open = true;
        let mut pending_stdin: Vec<u8> = Vec::new();
        // Pooled mode: the go message read so far.
        let mut go_buf: Vec<u8> = Vec::new();
        let mut streams = [
            Stream {
                kind: FrameKind::Stdout,
                sent: 0,
                truncated: false,
            },
            Stream {
                kind: FrameKind::Stderr,
                sent: 0,
                truncated: false,
            },
        ];
        let mut caller_gone = false;
        let mut buf = vec![0u8; CHUNK];
        let mut next_cpu_check = Instant::now() + CPU_POLL;
        let mut cpu_poll = CPU_POLL;
        let mut last_cpu_used = Duration::ZERO;

        loop {
            let now = Instant::now();
            // Decide whether a limit has run out.
            // Once the program has ended (PID 1 said so), a deadline passing while the output drains changes
            // nothing: the run is over.
            let over = pid1_status.is_some() || program_end.is_some() || all_reaped;
            if stop.is_none() && !over {
                match (running, started) {
                    (None, _) if now >= launched + SETUP_DEADLINE => stop = Some(StopReason::SetupTimeout),
                    (_, Some(t)) if now >= t + Duration::from_millis(limits.wall_ms) => {
                        stop = Some(StopReason::Timeout)
                    }
                    _ => {}
                }
                if stop.is_none() && started.is_some() && now >= next_cpu_check {
                    if let Some(used) = self.cgroup.as_ref().and_then(|c| c.cpu_usage()) {
                        if used.saturating_sub(cpu_baseline) > Duration::from_millis(limits.cpu_ms) {
                            stop = Some(StopReason::CpuLimit);
                        }
                        // An idle session is looked at less and less often (a thousand of them must not wake
                        // the host fifty thousand times a second); any CPU use brings the pace back.
                        cpu_poll = if spec.mode.is_session() && used == last_cpu_used {
                            (cpu_poll * 2).min(IDLE_CPU_POLL)
                        } else {
                            CPU_POLL
                        };
                        last_cpu_used = used;
                    }
                    next_cpu_check = now + cpu_poll;
                }
                if let Some(reason) = stop {
                    if reason == StopReason::Timeout {
                        // SIGINT first, so a Python program sees KeyboardInterrupt; SIGKILL after the grace.
                        self.signal_pid1(Signal::SIGINT);
                        grace_deadline = Some(now + Duration::from_millis(limits.grace_ms));
                    } else {
                        self.kill_all();
                        killed = true;
                    }
                }
            }
            if let Some(g) = grace_deadline {
                if !killed && now >= g {
                    self.kill_all();
                    killed = true;
                }
            }
            if pid1_status.is_some() || all_reaped {
                let done = self.stdout_r.is_none()
                    && self.stderr_r.is_none()
                    && (self.report_r.is_none() || all_reaped)
                    && self.worker_r.is_none();
                if done || drain_deadline.is_some_and(|d| now >= d) {
                    break;
                }
            }

            // Wait for something to happen, or for the next deadline.
            let mut deadlines = Vec::with_capacity(4);
            if started.is_some() {
                deadlines.push(next_cpu_check);
            }
            match (running, started) {
                (None, _) => deadlines.push(launched + SETUP_DEADLINE),
                (_, Some(t)) => deadlines.push(t + Duration::from_millis(limits.wall_ms)),
                _ => {}
            }
            deadlines.extend(grace_deadline.filter(|_| !killed));
            deadlines.extend(drain_deadline);
            // A pooled sandbox waiting for its go signal has no deadline: it sleeps until something happens.
            let wait = deadlines.iter().min().map(|d| d.saturating_duration_since(now));

            let mut fds: Vec<libc::pollfd> = Vec::with_capacity(7);
            let mut push = |fd: RawFd, events: libc::c_short| {
                fds.push(libc::pollfd { fd, events, revents: 0 });
                fds.len() - 1
            };
            let i_pid = pid1_status
                .is_none()
                .then(|| push(self.pidfd.as_raw_fd(), libc::POLLIN));
            let i_sig = push(self.sigfd.as_raw_fd(), libc::POLLIN);
            let i_out = self.stdout_r.as_ref().map(|fd| push(fd.as_raw_fd(), libc::POLLIN));
            let i_err = self.stderr_r.as_ref().map(|fd| push(fd.as_raw_fd(), libc::POLLIN));
            let i_rep = self.report_r.as_ref().map(|fd| push(fd.as_raw_fd(), libc::POLLIN));
            let i_worker = self.worker_r.as_ref().map(|fd| push(fd.as_raw_fd(), libc::POLLIN));
            let i_in = (input_open && pending_stdin.len() < CHUNK).then(|| push(0, libc::POLLIN));
            let i_stdin_w = self
                .stdin_w
                .as_ref()
                .filter(|_| !pending_stdin.is_empty())
                .map(|fd| push(fd.as_raw_fd(), libc::POLLOUT));
            // Our stdout reports an error once its reader (the caller) is gone, even while the program is silent:
            // a caller that died (a server killed outright) must not leave its run going on for nobody.
            let i_caller = (!caller_gone).then(|| push(out.as_raw_fd(), 0));
            let timeout_ms = match wait {
                Some(w) => w.as_millis().min(i32::MAX as u128) as i32 + i32::from(w.subsec_micros() % 1000 > 0),
                None => -1,
            };
            // SAFETY: `fds` is a valid array of pollfd structs for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if n < 0 {
                continue; // EINTR
            }
            let ready = |i: Option<usize>| i.is_some_and(|i| fds[i].revents != 0);

            if ready(i_caller) {
                caller_gone = true;
                if stop.is_none() && pid1_status.is_none() {
                    stop = Some(StopReason::Cancelled);
                    self.kill_all();
                    killed = true;
                }
            }

            if ready(Some(i_sig)) {
                let info = self.sigfd.read_signal().ok().flatten();
                let signal = info.map(|s| s.ssi_signo as i32);
                if signal == Some(libc::SIGUSR2) {
                    // The go once came as this signal; it is now a message on stdin (a signal's payload can be
                    // lost). Ignored, so that a stray one neither starts nor ends the run.
                } else if signal == Some(libc::SIGUSR1) {
                    // A session's interrupt: PID 1 forwards SIGINT to every process of the sandbox.
                    if pid1_status.is_none() {
                        self.signal_pid1(Signal::SIGINT);
                    }
                } else if stop.is_none() && pid1_status.is_none() {
                    stop = Some(StopReason::Cancelled);
                    self.kill_all();
                    killed = true;
                }
            }
            if ready(i_pid) {
                // Our own child is waited for; a zygote's child is reaped by the zygote's jail, and its pidfd
                // turning readable is all there is to know (the report pipe says how the program ended).
                let status = if self.own_child {
                    waitpid(self.pid1, None).ok()
                } else {
                    Some(WaitStatus::Exited(self.pid1, 0))
                };
                if let Some(status) = status {
                    self.reaped = true;
                    pid1_status = Some(status);
                    drain_deadline = Some(Instant::now() + DRAIN_DEADLINE);
                    // PID 1 is gone, so the kernel is killing its namespace; make sure of it through the cgroup.
                    if let Some(cg) = &self.cgroup {
                        cg.kill_all();
                    }
                    self.stdin_w = None;
                }
            }
            if let Some(fd) = self.report_r.as_ref().filter(|_| ready(i_rep)) {
                let messages = match read_chunk(fd, &mut buf) {
                    Some(0) => {
                        self.report_r = None;
                        Vec::new()
                    }
                    Some(n) => report_buf.push(&buf[..n]),
                    None => Vec::new(),
                };
                for message in messages {
                    match message {
                        Pid1Message::Running => {
                            running = Some(Instant::now());
                            if spec.mode.is_pooled() {
                                if !caller_gone {
                                    caller_gone = protocol::write_frame(out, FrameKind::Ready, &[]).is_err();
                                }
                            } else {
                                started = running;
                            }
                        }
                        Pid1Message::Exit(code) => program_end = Some(ProgramEnd::Exit(code)),
                        Pid1Message::Signal(signal) => program_end = Some(ProgramEnd::Signal(signal)),
                        Pid1Message::Error(text) => setup_error = Some(text),
                        Pid1Message::Reaped => {
                            all_reaped = true;
                            drain_deadline.get_or_insert(Instant::now() + DRAIN_DEADLINE);
                        }
                    }
                }
            }
            // Output the worker produced before it wrote a message is forwarded first: the worker flushes its
            // stdout and stderr before replying, so the reply never overtakes the output it concludes.
            let worker_ready = ready(i_worker);
            let (out_ready, err_ready) = (ready(i_out) || worker_ready, ready(i_err) || worker_ready);
            for (ready_now, which) in [(out_ready, 0usize), (err_ready, 1usize)] {
                // Normally one chunk per wake-up; before a worker message, everything buffered so far.
                let mut more = ready_now;
                while more {
                    more = worker_ready;
                    let slot = if which == 0 {
                        &mut self.stdout_r
                    } else {
                        &mut self.stderr_r
                    };
                    let Some(fd) = slot.as_ref() else { break };
                    let n = match read_chunk(fd, &mut buf) {
                        Some(0) => {
                            *slot = None;
                            break;
                        }
                        Some(n) => n,
                        None => break,
                    };
                    let stream = &mut streams[which];
                    let room = limits.output_bytes.saturating_sub(stream.sent) as usize;
                    let keep = n.min(room);
                    if keep > 0 && !caller_gone {
                        caller_gone = protocol::write_frame(out, stream.kind, &buf[..keep]).is_err();
                        if caller_gone && stop.is_none() && pid1_status.is_none() {
                            stop = Some(StopReason::Cancelled);
                            self.kill_all();
                            killed = true;
                        }
                    }
                    stream.sent += keep as u64;
                    if n > keep {
                        stream.truncated = true;
                        more = false;
                        if stop.is_none() && pid1_status.is_none() {
                            stop = Some(StopReason::OutputLimit);
                            self.kill_all();
                            killed = true;
                        }
                    }
                }
            }
            if let Some(fd) = self.worker_r.as_ref().filter(|_| worker_ready) {
                match read_chunk(fd, &mut buf) {
                    Some(0) => self.worker_r = None,
                    Some(n) if !caller_gone => {
                        caller_gone = protocol::write_frame(out, FrameKind::Worker, &buf[..n]).is_err();
                    }
                    _ => {}
                }
            }
            if ready(i_in) {
                let room = CHUNK - pending_stdin.len();
                let chunk = read_chunk(&OwnedFdRef(0).owned(), &mut buf[..room]);
                // A warm sandbox's first input is its go message: the limits, then the program may run.
                let chunk = match chunk {
                    Some(n) if n > 0 && self.go_w.is_some() => {
                        go_buf.extend_from_slice(&buf[..n]);
                        match protocol::decode_go(&go_buf) {
                            Ok(None) => None,
                            Ok(Some((go, used))) => {
                                limits.wall_ms = go.wall_ms;
                                limits.cpu_ms = go.cpu_ms;
                                let ack = serde_json::to_vec(&go).expect("a go always serialises");
                                if !caller_gone {
                                    caller_gone = protocol::write_frame(out, FrameKind::Started, &ack).is_err();
                                }
                                cpu_baseline = self.cgroup.as_ref().and_then(|c| c.cpu_usage()).unwrap_or_default();
                                started = Some(Instant::now());
                                next_cpu_check = Instant::now() + CPU_POLL;
                                let go_w = self.go_w.take().expect("checked");
                                let _ = nix::unistd::write(&go_w, &[1]);
                                // Normal priority again, right after the program was let go.
                                if let Some(cg) = &self.cgroup {
                                    for pid in cg.pids().into_iter().chain([0]) {
                                        // SAFETY: setpriority on a process of our sandbox (or ourselves, pid 0).
                                        unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, 0) };
                                    }
                                }
                                // What followed the message is the program's stdin.
                                let rest = go_buf.split_off(used);
                                if self.stdin_w.is_some() {
                                    pending_stdin.extend_from_slice(&rest);
                                }
                                None
                            }
                            Err(e) => {
                                // Limits that did not arrive intact: the program never starts. The sandbox is
                                // killed before the go pipe closes, since that end of file would release a
                                // program waiting on it.
                                if stop.is_none() && pid1_status.is_none() {
                                    setup_error = Some(format!("the run's limits did not arrive: {e}"));
                                    self.kill_all();
                                    killed = true;
                                }
                                self.go_w = None;
                                None
                            }
                        }
                    }
                    other => other,
                };
                match chunk {
                    Some(0) => {
                        input_open = false;
                        // A warm sandbox whose caller went away before using it has no one to run for, and a session
                        // (or a zygote) whose owner closed its input has no one to serve: the owner may have died
                        // without ending it.
                        let unowned = (spec.mode.is_pooled() && started.is_none()) || spec.mode.is_session();
                        if unowned && stop.is_none() && pid1_status.is_none() {
                            stop = Some(StopReason::Cancelled);
                            self.kill_all();
                            killed = true;
                        }
                    }
                    Some(n) if self.stdin_w.is_some() && self.go_w.is_none() => {
                        pending_stdin.extend_from_slice(&buf[..n])
                    }
                    _ => {} // the program closed its stdin: keep draining ours so the caller never blocks
                }
                if !input_open && pending_stdin.is_empty() {
                    self.stdin_w = None;
                }
            }
            // The pipe may be gone since the poll: PID 1 ending in this same wake-up drops it (above). That is
            // the usual end of a program that exits without reading its input, so it is no error.
            if let Some(fd) = self.stdin_w.as_ref().filter(|_| ready(i_stdin_w)) {
                match nix::unistd::write(fd, &pending_stdin) {
                    Ok(n) => {
                        pending_stdin.drain(..n);
                    }
                    Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => {
                        pending_stdin.clear();
                        self.stdin_w = None;
                    }
                }
                if !input_open && pending_stdin.is_empty() {
                    self.stdin_w = None;
                }
            }
        }

        let ending = Ending {
            finished: Instant::now(),
            started,
            cpu_baseline,
            stop,
            setup_error,
            program_end,
            pid1_status,
            truncated: [streams[0].truncated, streams[1].truncated],
        };
        self.report(ending, &limits)
    }

    /// The report on a run that has ended: what the cgroup (or, without one, `getrusage`) measured, and the
    /// verdict on how it ended.
    fn report(&self, ending: Ending, limits: &Limits) -> JailReport {
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
    fn signal_pid1(&self, signal: Signal) {
        if !self.reaped {
            pidfd_signal(&self.pidfd, signal);
        }
    }

    /// SIGKILL to PID 1 ends its whole PID namespace; the cgroup catches anything that could have escaped it.
    fn kill_all(&self) {
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
