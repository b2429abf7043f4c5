//! PID 1 of the sandbox. Runs in the child created by `clone` with fresh user, PID, mount, network, IPC and UTS
//! namespaces: it waits for the supervisor to map its ids, builds the filesystem, drops every privilege, installs
//! seccomp, starts the program, reaps every zombie and, when the program ends, kills everything it left behind.
//!
//! Nothing here returns: the process ends with `_exit`, and every failure is written to the report pipe first so
//! that the supervisor can say what failed.

use std::ffi::CString;
use std::os::fd::RawFd;

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};

use super::error::JailError;
use super::message::Pid1Message;
use crate::landlock_rules;
use crate::mounts::{self, RootPlan};
use crate::seccomp::CompiledFilter;
use crate::spec::{Limits, SANDBOX_UID};

/// Everything PID 1 needs, prepared by the supervisor before `clone` so the child allocates little.
pub struct InitContext<'a> {
    pub plan: RootPlan,
    pub limits: Limits,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub path_var: String,
    pub sync_r: RawFd,
    pub report_w: RawFd,
    pub stdin_r: RawFd,
    pub stdout_w: RawFd,
    pub stderr_w: RawFd,
    /// Session mode: the worker's reply pipe, placed at fd 4 (and `stdin_r` goes to fd 3).
    pub worker_w: Option<RawFd>,
    /// Pooled mode: the go pipe's read end, placed at fd 3.
    pub go_r: Option<RawFd>,
    /// The supervisor's own descriptors, which PID 1 must not keep.
    pub supervisor_fds: Vec<RawFd>,
    pub seccomp: Option<&'a CompiledFilter>,
    pub landlock: bool,
    pub cgroup_namespace: bool,
    /// Zygote mode: the program applies neither seccomp nor Landlock itself; it gets them for its children.
    pub zygote: bool,
    /// Root mode may clear supplementary groups; an unprivileged user namespace may not call setgroups.
    pub can_setgroups: bool,
}

/// Writes one message to the supervisor. Messages are far below PIPE_BUF, so each write is atomic.
pub fn report(fd: RawFd, message: Pid1Message) {
    let line = message.encode();
    // SAFETY: writing a buffer we own to a pipe descriptor; a short or failed write only loses the message.
    unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process without running the parent's atexit handlers or flushing its stdio buffers,
    // which a forked child must not do.
    unsafe { libc::_exit(code) }
}

/// Entry point of the cloned child.
pub fn run(ctx: &InitContext<'_>) -> ! {
    match setup(ctx) {
        Ok(program) => supervise_program(ctx, program),
        Err(error) => {
            report(ctx.report_w, Pid1Message::Error(error.to_string()));
            exit(1)
        }
    }
}

fn check(ret: libc::c_int, what: &'static str) -> Result<(), JailError> {
    if ret < 0 {
        Err(JailError::last_os(what))
    } else {
        Ok(())
    }
}

fn setup(ctx: &InitContext<'_>) -> Result<Pid, JailError> {
    // Wait until the supervisor has written our uid/gid maps and put us in the cgroup.
    let mut byte = [0u8; 1];
    // SAFETY: reading one byte into a local buffer.
    let n = unsafe { libc::read(ctx.sync_r, byte.as_mut_ptr().cast(), 1) };
    if n != 1 {
        exit(1); // the supervisor went away; nobody to report to
    }
    // SAFETY: closing descriptors this process owns and no longer needs; the supervisor keeps its own copies.
    // (`sync_r` stays open until the parent-death signal is armed, below.)
    unsafe {
        for &fd in &ctx.supervisor_fds {
            libc::close(fd);
        }
    }
    // PID 1's own stdio are the supervisor's protocol pipes: replace them so nothing here can write into them.
    let devnull = CString::new("/dev/null").expect("no NUL");
    // SAFETY: open/dup2/close on descriptors of this process.
    unsafe {
        let null = libc::open(devnull.as_ptr(), libc::O_RDWR);
        check(null, "open /dev/null")?;
        for fd in 0..3 {
            check(libc::dup2(null, fd), "dup2 /dev/null")?;
        }
        if null > 2 {
            libc::close(null);
        }
    }

    if ctx.cgroup_namespace {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| JailError::Sys("unshare cgroup namespace", e))?;
    }

    // Become the sandbox user now, keeping capabilities for the setup: files we create below must be owned by a
    // mapped id.
    // SAFETY: prctl with integer arguments only.
    let keepcaps = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    check(keepcaps, "PR_SET_KEEPCAPS")?;
    if ctx.can_setgroups {
        nix::unistd::setgroups(&[]).map_err(|e| JailError::Sys("setgroups", e))?;
    }
    let gid = Gid::from_raw(SANDBOX_UID);
    let uid = Uid::from_raw(SANDBOX_UID);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| JailError::Sys("setresgid", e))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| JailError::Sys("setresuid", e))?;
    let permitted = caps::read(None, caps::CapSet::Permitted).map_err(|e| JailError::Caps("read capabilities", e))?;
    caps::set(None, caps::CapSet::Effective, &permitted).map_err(|e| JailError::Caps("raise capabilities", e))?;
    die_with_the_jail(ctx.sync_r)?;

    // The program's clocks start at a fixed value, not at the host's uptime (before the counters below cap new
    // namespaces at 0). Not for a zygote, whose children reckon their own offsets from the host's clocks.
    if !ctx.zygote && super::host_view::time_namespaces_available() {
        super::host_view::time_namespace_for_children()?;
    }

    // This namespace's caps on the kernel's per-user counters, and the signal and message-queue limits of every
    // process of the sandbox (a zygote's children get theirs from the zygote's request).
    super::counters::limit_own_namespace(ctx.zygote)?;
    if !ctx.zygote {
        super::counters::limit_queues()?;
    }

    nix::unistd::setsid().map_err(|e| JailError::Sys("setsid", e))?;
    nix::unistd::sethostname("runbox").map_err(|e| JailError::Sys("sethostname", e))?;
    mounts::enter_new_root(&ctx.plan)?;
    crate::net::loopback_up().map_err(JailError::Network)?;

    drop_privileges()?;
    if let Some(filter) = ctx.seccomp.filter(|_| !ctx.zygote) {
        filter.apply()?;
    }

    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGCHLD);
    blocked.add(Signal::SIGINT);
    blocked.thread_block().map_err(|e| JailError::Sys("block signals", e))?;

    // SAFETY: this process is single-threaded (a clone of the single-threaded jail), so fork is sound.
    match unsafe { fork() }.map_err(|e| JailError::Sys("fork the program", e))? {
        ForkResult::Child => exec_program(ctx),
        ForkResult::Parent { child } => Ok(child),
    }
}

/// Arms SIGKILL for when the jail (our parent) ends, so that no sandbox outlives the process that enforces its
/// limits and reports on it, whatever killed that process. PID 1 dying ends its whole PID namespace. The kernel
/// clears this signal whenever the effective ids change, so it is armed after the last such change (`setresuid`).
/// The jail keeps the sync pipe's write end for its whole life: if it already ended before the signal was armed,
/// the pipe shows it (hung up), and PID 1 ends here instead.
fn die_with_the_jail(sync_r: RawFd) -> Result<(), JailError> {
    // SAFETY: prctl with integer arguments only.
    let armed = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    check(armed, "PR_SET_PDEATHSIG")?;
    let mut fds = [libc::pollfd {
        fd: sync_r,
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: `fds` is a valid one-element array for the duration of the call; `sync_r` is ours to close.
    unsafe {
        let n = libc::poll(fds.as_mut_ptr(), 1, 0);
        libc::close(sync_r);
        if n != 0 && fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            exit(1); // the jail is gone: nobody to report to
        }
    }
    Ok(())
}

/// Drops every capability from every set, forbids gaining new ones, and hides PID 1 from same-uid tracing.
fn drop_privileges() -> Result<(), JailError> {
    use caps::CapSet;
    for set in [
        CapSet::Bounding,
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| JailError::DropCaps(set, e))?;
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0), "PR_SET_KEEPCAPS")?;
        check(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            "PR_SET_NO_NEW_PRIVS",
        )?;
        check(libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE")?;
    }
    Ok(())
}

fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64, what: &'static str) -> Result<(), JailError> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass.
    check(unsafe { libc::setrlimit(resource, &limit) }, what)
}

/// The program's process: final restrictions, then execve. Never returns.
fn exec_program(ctx: &InitContext<'_>) -> ! {
    // The report pipe moves above the descriptors the program gets, so placing them cannot clobber it.
    // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor we own to the lowest free number >= 16.
    let report_w = unsafe { libc::fcntl(ctx.report_w, libc::F_DUPFD_CLOEXEC, 16) };
    let report_w = if report_w < 0 { ctx.report_w } else { report_w };
    let fail = |error: JailError| -> ! {
        report(report_w, Pid1Message::Error(error.to_string()));
        exit(127)
    };
    // SAFETY: signal-mask and disposition changes on this single-threaded child.
    unsafe {
        let empty: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // The jail ignores SIGPIPE; programs expect the default.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
    let zygote_kit = if ctx.zygote {
        match zygote_kit(ctx) {
            Ok(kit) => kit,
            Err(e) => fail(e),
        }
    } else {
        Vec::new()
    };
    if let Err(e) = place_descriptors(ctx, &zygote_kit) {
        fail(e);
    }
    if let Err(e) = std::env::set_current_dir("/workspace") {
        fail(JailError::Chdir(e));
    }
    if ctx.landlock && !ctx.zygote {
        match landlock_rules::restrict_self() {
            Ok(true) => {}
            Ok(false) => fail(JailError::LandlockNotEnforced),
            Err(e) => fail(JailError::Landlock(e)),
        }
    }
    let l = &ctx.limits;
    let cpu_secs = l.cpu_ms.div_ceil(1000) + 1;
    let rlimits = [
        (libc::RLIMIT_FSIZE, l.file_size_bytes, l.file_size_bytes, "RLIMIT_FSIZE"),
        (libc::RLIMIT_NOFILE, l.open_files, l.open_files, "RLIMIT_NOFILE"),
        (libc::RLIMIT_CORE, 0, 0, "RLIMIT_CORE"),
        // A per-process backstop; the total over all processes is enforced by the supervisor from the cgroup.
        (libc::RLIMIT_CPU, cpu_secs, cpu_secs + 1, "RLIMIT_CPU"),
    ];
    for (resource, soft, hard, what) in rlimits {
        if let Err(e) = set_rlimit(resource, soft, hard, what) {
            fail(e);
        }
    }
    let Some(program) = mounts::find_in_path(ctx.argv[0].to_str().unwrap_or(""), &ctx.path_var) else {
        fail(JailError::NotInPath(ctx.argv[0].to_string_lossy().into_owned()))
    };
    // Every descriptor but the program's own closes on exec; the report pipe stays usable until then.
    let first_private = if ctx.zygote {
        7u32
    } else if ctx.worker_w.is_some() {
        5u32
    } else if ctx.go_r.is_some() {
        4u32
    } else {
        3u32
    };
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on this process's descriptors.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first_private,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    let error = nix::unistd::execve(&program, &ctx.argv, &ctx.envp).unwrap_err();
    fail(JailError::Exec {
        program: program.to_string_lossy().into_owned(),
        source: error,
    })
}

/// What a zygote's children need to restrict themselves, as (descriptor, place) pairs, each a pipe already
/// filled and closed: the compiled seccomp programs at fd 5 (empty when seccomp is not in force) and the Landlock
/// rules at fd 6 (absent when Landlock is not in force).
fn zygote_kit(ctx: &InitContext<'_>) -> Result<Vec<(RawFd, RawFd)>, JailError> {
    let seccomp = ctx.seccomp.map(|f| f.to_bytes()).unwrap_or_default();
    let mut kit = vec![(filled_pipe(&seccomp)?, 5)];
    if ctx.landlock {
        let rules = landlock_rules::rules_for_zygote().ok_or(JailError::NoLandlock)?;
        kit.push((filled_pipe(rules.as_bytes())?, 6));
    }
    Ok(kit)
}

/// The read end of a pipe holding `bytes` (a few KiB at most, far below a pipe's capacity: one write that never
/// blocks) whose write end is closed.
fn filled_pipe(bytes: &[u8]) -> Result<RawFd, JailError> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the two-element array we pass.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, "pipe")?;
    // SAFETY: writing a buffer we own to the pipe we just made, then closing its write end.
    let written = unsafe {
        let n = libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
        libc::close(fds[1]);
        n
    };
    if written != bytes.len() as isize {
        return Err(JailError::ZygoteKit);
    }
    Ok(fds[0])
}

/// Puts the program's descriptors in place: stdio, and in session mode the worker protocol on fds 3 and 4
/// (with stdin from /dev/null), then `extra`. Sources are first moved above 16 so that no placement overwrites
/// another source.
fn place_descriptors(ctx: &InitContext<'_>, extra: &[(RawFd, RawFd)]) -> Result<(), JailError> {
    let devnull = CString::new("/dev/null").expect("no NUL");
    let mut plan: Vec<(RawFd, RawFd)> = vec![(ctx.stdout_w, 1), (ctx.stderr_w, 2)];
    match ctx.worker_w {
        Some(worker_w) => {
            // SAFETY: opening /dev/null read-only; the descriptor is placed (and closed) below.
            let null = unsafe { libc::open(devnull.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            check(null, "open /dev/null")?;
            plan.extend([(null, 0), (ctx.stdin_r, 3), (worker_w, 4)]);
        }
        None => plan.push((ctx.stdin_r, 0)),
    }
    if let Some(go_r) = ctx.go_r {
        plan.push((go_r, 3));
    }
    plan.extend_from_slice(extra);
    let mut moved = Vec::with_capacity(plan.len());
    for (from, to) in plan {
        // SAFETY: duplicating a descriptor we own.
        let high = unsafe { libc::fcntl(from, libc::F_DUPFD_CLOEXEC, 16) };
        check(high, "move a descriptor")?;
        moved.push((high, to));
    }
    for (high, to) in moved {
        // SAFETY: dup2 onto the target number (clearing close-on-exec there), then dropping the temporary.
        unsafe {
            check(libc::dup2(high, to), "dup2")?;
            libc::close(high);
        }
    }
    Ok(())
}

/// PID 1's life after the fork: forward interrupts, reap every child, and end the namespace with the program.
fn supervise_program(ctx: &InitContext<'_>, program: Pid) -> ! {
    // SAFETY: closing this process's copies of the program's stdio pipes so that EOF reaches the supervisor when
    // the program's side closes.
    unsafe {
        libc::close(ctx.stdin_r);
        libc::close(ctx.stdout_w);
        libc::close(ctx.stderr_w);
        for fd in ctx.worker_w.into_iter().chain(ctx.go_r) {
            libc::close(fd);
        }
    }
    report(ctx.report_w, Pid1Message::Running);
    let mut waiting = SigSet::empty();
    waiting.add(Signal::SIGCHLD);
    waiting.add(Signal::SIGINT);
    let mut ended: Option<WaitStatus> = None;
    while ended.is_none() {
        match waiting.wait() {
            // kill(-1) reaches every process of this namespace except PID 1 itself.
            Ok(Signal::SIGINT) => drop(kill(Pid::from_raw(-1), Signal::SIGINT)),
            Ok(_) => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(status) if status.pid() == Some(program) => ended = Some(status),
                    Ok(_) => {}
                }
            },
            Err(_) => {}
        }
    }
    match ended {
        Some(WaitStatus::Exited(_, code)) => report(ctx.report_w, Pid1Message::Exit(code)),
        Some(WaitStatus::Signaled(_, signal, _)) => report(ctx.report_w, Pid1Message::Signal(signal as i32)),
        _ => {}
    }
    // Nothing the program started may outlive it: daemons, setsid'd grandchildren, stopped processes.
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while waitpid(None, None).is_ok() {}
    // Everything is dead: the supervisor can report now, without waiting for the namespaces' teardown.
    report(ctx.report_w, Pid1Message::Reaped);
    exit(0)
}
