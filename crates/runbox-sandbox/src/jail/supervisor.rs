//! The jail's outer half, on the host side of the namespaces: starts PID 1, relays stdin and output, watches the
//! clocks and the cgroup, and turns what happened into a [`JailReport`].

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::stat::Mode as FileMode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe2, Pid};

use super::counters;
use super::init::{self, InitContext};
use super::verdict::{self, ProgramEnd, StopReason};
use crate::cgroup::Cgroup;
use crate::mounts::{RootPlan, WorkspaceSource, DEFAULT_HOST_PATHS};
use crate::outcome::JailReport;
use crate::probe::{self, Mode};
use crate::protocol::{self, FrameKind};
use crate::seccomp::CompiledFilter;
use crate::spec::{SandboxSpec, SANDBOX_UID};

/// Longest time PID 1 may take to build the sandbox before the run is abandoned.
const SETUP_DEADLINE: Duration = Duration::from_secs(10);
/// How often the cgroup's CPU counter is read when a CPU limit applies.
const CPU_POLL: Duration = Duration::from_millis(20);
/// The slowest pace of those reads in a session that uses no CPU (the per-process RLIMIT_CPU stays a backstop).
const IDLE_CPU_POLL: Duration = Duration::from_millis(640);
/// How long output may keep flowing after PID 1 is gone (only already-buffered bytes remain by then).
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);
const CHUNK: usize = 64 * 1024;

/// Runs the sandbox to its end. The report is ready as soon as every process of the sandbox is dead; tearing
/// down the namespaces and the cgroup takes longer, so that is left to the returned guard, dropped after the
/// report is written.
pub fn run(spec: &SandboxSpec, out: &mut File) -> (JailReport, Option<Live>) {
    match start(spec) {
        Ok(mut live) => {
            let report = live.supervise(spec, out);
            (report, Some(live))
        }
        Err(message) => (JailReport::sandbox_error(message), None),
    }
}

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

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// The pipes between the jail and the program: (read end, write end) each.
pub(super) struct Plumbing {
    pub stdin: (OwnedFd, OwnedFd),
    pub stdout: (OwnedFd, OwnedFd),
    pub stderr: (OwnedFd, OwnedFd),
    pub report: (OwnedFd, OwnedFd),
    pub worker: Option<(OwnedFd, OwnedFd)>,
    pub go: Option<(OwnedFd, OwnedFd)>,
}

impl Plumbing {
    fn new(spec: &SandboxSpec, mode: Mode) -> Result<Plumbing, String> {
        let plumbing = Plumbing {
            stdin: pipe()?,
            stdout: pipe()?,
            stderr: pipe()?,
            report: pipe()?,
            worker: if spec.session { Some(pipe()?) } else { None },
            go: if spec.pooled && !spec.session {
                Some(pipe()?)
            } else {
                None
            },
        };
        // Pipes belong to whoever made them: hand the program's ends to the sandbox user, so that it can reopen
        // them by path (/dev/stdin, /proc/self/fd/N) like any program expects to.
        if mode == Mode::Root {
            let owner = Some(nix::unistd::Uid::from_raw(spec.policy.host_uid));
            let group = Some(nix::unistd::Gid::from_raw(spec.policy.host_uid));
            let program_ends = [&plumbing.stdin.0, &plumbing.stdout.1, &plumbing.stderr.1]
                .into_iter()
                .chain(plumbing.worker.as_ref().map(|(_, w)| w));
            for fd in program_ends {
                nix::unistd::fchown(fd, owner, group).map_err(|e| format!("fchown a pipe: {e}"))?;
            }
        }
        Ok(plumbing)
    }
}

/// Holds the signals the supervisor handles and returns the descriptor that delivers them.
fn signal_fd() -> Result<SignalFd, String> {
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        signals.add(s);
    }
    signals.thread_block().map_err(|e| format!("block signals: {e}"))?;
    SignalFd::with_flags(&signals, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC).map_err(|e| format!("signalfd: {e}"))
}

/// A pidfd for `pid`, which must be alive (and, if not our child, pinned some other way).
pub(super) fn pidfd_open(pid: Pid) -> Result<OwnedFd, String> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor, which we own.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if pidfd < 0 {
        return Err(format!("pidfd_open: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the descriptor was just returned by pidfd_open and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) })
}

/// Sends `signal` to the process behind `pidfd` (nothing if it has ended).
pub(super) fn pidfd_signal(pidfd: &OwnedFd, signal: Signal) {
    // SAFETY: pidfd_send_signal with a pidfd we own, a valid signal number and no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// Makes the jail's ends of the program's stdio non-blocking (the supervisor polls them).
pub(super) fn nonblocking(fds: [&OwnedFd; 3]) -> Result<(), String> {
    for fd in fds {
        fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| format!("fcntl: {e}"))?;
    }
    Ok(())
}

fn cstring(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

fn start(spec: &SandboxSpec) -> Result<Live, String> {
    let host = probe::host_for(&spec.policy);
    let in_force = probe::decide(&host, &spec.policy)?;
    let cgroup = match in_force.cgroup {
        Some(version) => Some(
            Cgroup::create(
                &host.cgroups,
                version,
                &spec.policy.cgroup_parent,
                &spec.id,
                &spec.limits,
                in_force.cpu_cap,
            )
            .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    // A warm sandbox builds itself at low priority so it never slows the requests being served; the go signal
    // restores normal priority. (Only root may lower a niceness again, so unprivileged pools stay normal.)
    // The cgroup lists the processes to restore at go; without one the sandbox keeps normal priority throughout.
    // (A zygote's child lowers its own priority the same way.)
    let deprioritised = spec.pooled && in_force.mode == Mode::Root && cgroup.is_some();
    if deprioritised {
        // SAFETY: setpriority on the calling process; children inherit the niceness.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    }
    if let Some(zygote) = &spec.from_zygote {
        if in_force.mode != Mode::Root {
            return Err("a sandbox is built from a zygote only when runbox runs as root".into());
        }
        let plumbing = Plumbing::new(spec, in_force.mode)?;
        return super::from_zygote::start(spec, zygote, plumbing, signal_fd()?, cgroup);
    }
    let seccomp = in_force
        .seccomp
        .then(CompiledFilter::build)
        .transpose()
        .map_err(|e| e.to_string())?;

    // As root the workspace is reached through a detached clone of its mount, made here with the jail's own
    // privileges before the sandbox's user namespace exists: the sandbox's ids then need no access to the
    // directories above it (a data directory under a 0700 parent). An unprivileged jail cannot clone mounts; its
    // PID 1 has the invoking user's ids and opens the path itself. Either way a symlink is refused.
    let (workspace, workspace_source) = match in_force.mode {
        Mode::Root => {
            let fd = crate::mounts::detached_clone(&spec.workspace).map_err(|e| e.to_string())?;
            let raw = fd.as_raw_fd();
            (fd, WorkspaceSource::Detached(raw))
        }
        Mode::Unprivileged => (
            open(
                &spec.workspace,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                FileMode::empty(),
            )
            .map_err(|e| format!("open workspace {}: {e}", spec.workspace.display()))?,
            WorkspaceSource::Path(spec.workspace.clone()),
        ),
    };

    let Plumbing {
        stdin: (stdin_r, stdin_w),
        stdout: (stdout_r, stdout_w),
        stderr: (stderr_r, stderr_w),
        report: (report_r, report_w),
        worker,
        go,
    } = Plumbing::new(spec, in_force.mode)?;
    let (sync_r, sync_w) = pipe()?;
    let sigfd = signal_fd()?;

    let mut env = SandboxSpec::base_env();
    env.extend(spec.env.clone());
    let path_var = env.get("PATH").cloned().unwrap_or_default();
    let envp = env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}"), "environment"))
        .collect::<Result<Vec<_>, _>>()?;
    let argv = spec
        .argv
        .iter()
        .map(|a| cstring(a, "argv"))
        .collect::<Result<Vec<_>, _>>()?;

    let mut host_paths: Vec<PathBuf> = DEFAULT_HOST_PATHS.iter().map(PathBuf::from).collect();
    host_paths.extend(spec.extra_paths.iter().cloned());
    let ctx = InitContext {
        plan: RootPlan {
            host_paths,
            workspace: workspace_source,
            tmp_bytes: spec.limits.tmp_bytes,
            mask_proc: !spec.zygote,
        },
        limits: spec.limits.clone(),
        argv,
        envp,
        path_var,
        sync_r: sync_r.as_raw_fd(),
        report_w: report_w.as_raw_fd(),
        stdin_r: stdin_r.as_raw_fd(),
        stdout_w: stdout_w.as_raw_fd(),
        stderr_w: stderr_w.as_raw_fd(),
        worker_w: worker.as_ref().map(|(_, w)| w.as_raw_fd()),
        go_r: go.as_ref().map(|(r, _)| r.as_raw_fd()),
        supervisor_fds: [&stdin_w, &stdout_r, &stderr_r, &report_r, &sync_w]
            .iter()
            .map(|fd| fd.as_raw_fd())
            .chain([sigfd.as_raw_fd()])
            .chain(worker.as_ref().map(|(r, _)| r.as_raw_fd()))
            .chain(go.as_ref().map(|(_, w)| w.as_raw_fd()))
            .collect(),
        seccomp: seccomp.as_ref(),
        landlock: in_force.landlock,
        cgroup_namespace: cgroup.is_some(),
        zygote: spec.zygote,
        can_setgroups: in_force.mode == Mode::Root,
    };

    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    let mut stack = vec![0u8; 1 << 20];
    // As root, the user namespace is created by a host uid of this sandbox's own, which the kernel charges for
    // the sandbox's per-user counters (see `counters`); the jail is root again right after the clone.
    let acting_as = match in_force.mode {
        Mode::Root => Some(counters::ActingAs::owner(counters::namespace_owner(
            spec.policy.namespace_owner_base,
            spec.policy.host_uid,
            std::process::id(),
        )?)?),
        Mode::Unprivileged => None,
    };
    // SAFETY: the jail is single-threaded, so the child starts with a consistent copy of this address space; the
    // callback only reads `ctx` (its own copy after the clone) and never returns into the parent's frames.
    let cloned = unsafe { nix::sched::clone(Box::new(|| init::run(&ctx)), &mut stack, flags, Some(libc::SIGCHLD)) };
    drop(acting_as);
    let pid1 = cloned.map_err(|e| format!("clone the sandbox's namespaces: {e}"))?;
    // From here on, any error must not leave PID 1 behind.
    let abort = |message: String| -> String {
        let _ = kill(pid1, Signal::SIGKILL);
        let _ = waitpid(pid1, None);
        message
    };

    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let (host_uid, host_gid) = match in_force.mode {
        Mode::Root => (spec.policy.host_uid, spec.policy.host_uid),
        Mode::Unprivileged => (euid, egid),
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid1}"));
    if in_force.mode == Mode::Unprivileged {
        std::fs::write(proc_dir.join("setgroups"), "deny").map_err(|e| abort(format!("write setgroups: {e}")))?;
    }
    std::fs::write(proc_dir.join("uid_map"), format!("{SANDBOX_UID} {host_uid} 1\n"))
        .map_err(|e| abort(format!("write uid_map: {e}")))?;
    std::fs::write(proc_dir.join("gid_map"), format!("{SANDBOX_UID} {host_gid} 1\n"))
        .map_err(|e| abort(format!("write gid_map: {e}")))?;
    if let Some(cg) = &cgroup {
        cg.add_process(pid1.as_raw()).map_err(|e| abort(e.to_string()))?;
    }
    let pidfd = pidfd_open(pid1).map_err(abort)?;
    nix::unistd::write(&sync_w, &[1]).map_err(|e| abort(format!("release PID 1: {e}")))?;
    // `sync_w` stays open as long as this jail lives: PID 1 checks it to know the jail still exists.
    drop((stdin_r, stdout_w, stderr_w, report_w, sync_r, workspace));
    let worker_r = worker.map(|(r, w)| {
        drop(w);
        r
    });
    let go_w = go.map(|(r, w)| {
        drop(r);
        w
    });

    nonblocking([&stdin_w, &stdout_r, &stderr_r]).map_err(abort)?;
    Ok(Live {
        pid1,
        pidfd,
        own_child: true,
        sigfd,
        stdin_w: Some(stdin_w),
        stdout_r: Some(stdout_r),
        stderr_r: Some(stderr_r),
        report_r: Some(report_r),
        worker_r,
        go_w,
        cgroup,
        _lifeline: sync_w,
        reaped: false,
    })
}

struct Stream {
    kind: FrameKind,
    sent: u64,
    truncated: bool,
}

fn read_chunk(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        match nix::unistd::read(fd, buf) {
            Ok(n) => return Some(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return None,
            Err(_) => return Some(0),
        }
    }
}

impl Live {
    fn supervise(&mut self, spec: &SandboxSpec, out: &mut File) -> JailReport {
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
        let mut report_buf = Vec::new();
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
                        cpu_poll = if spec.session && used == last_cpu_used {
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
                match read_chunk(fd, &mut buf) {
                    Some(0) => self.report_r = None,
                    Some(n) => report_buf.extend_from_slice(&buf[..n]),
                    None => {}
                }
                while let Some(pos) = report_buf.iter().position(|&b| b == b'\n') {
                    let line = String::from_utf8_lossy(&report_buf[..pos]).into_owned();
                    report_buf.drain(..=pos);
                    let (word, rest) = line.split_once(' ').unwrap_or((&line, ""));
                    match word {
                        "running" => {
                            running = Some(Instant::now());
                            if spec.pooled {
                                if !caller_gone {
                                    caller_gone = protocol::write_frame(out, FrameKind::Ready, &[]).is_err();
                                }
                            } else {
                                started = running;
                            }
                        }
                        "exit" => program_end = rest.parse().ok().map(ProgramEnd::Exit),
                        "signal" => program_end = rest.parse().ok().map(ProgramEnd::Signal),
                        "error" => setup_error = Some(rest.to_string()),
                        "reaped" => {
                            all_reaped = true;
                            drain_deadline.get_or_insert(Instant::now() + DRAIN_DEADLINE);
                        }
                        _ => {}
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
                        let unowned = (spec.pooled && started.is_none()) || spec.session;
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

        let finished = Instant::now();
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
        let (status, message) = verdict::decide(&facts, &limits);
        JailReport {
            status,
            exit_code,
            signal,
            stdout_truncated: streams[0].truncated,
            stderr_truncated: streams[1].truncated,
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

/// Borrowed view of a raw descriptor the process keeps open for its whole life (fd 0).
struct OwnedFdRef(RawFd);

impl OwnedFdRef {
    fn owned(&self) -> std::mem::ManuallyDrop<OwnedFd> {
        // SAFETY: fd 0 stays open for the life of the jail; ManuallyDrop keeps it from being closed here.
        std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(self.0) })
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
