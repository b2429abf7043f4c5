//! Starting a sandbox: the cgroup, the workspace's mount, the pipes, then `clone` of PID 1 into fresh namespaces
//! (or, for a warm sandbox built by a zygote, [`from_zygote`]), its uid and gid maps, and its release. The result
//! is a [`Live`] sandbox for the supervision loop (`supervise.rs`).

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode as FileMode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::counters;
use super::error::JailError;
use super::from_zygote;
use super::init::{self, InitContext};
use super::live::Live;
use super::plumbing::Plumbing;
use super::sys::{nonblocking, pidfd_open, pipe, signal_fd};
use crate::cgroup::Cgroup;
use crate::mounts::{RootPlan, WorkspaceSource, DEFAULT_HOST_PATHS};
use crate::probe::{self, HostReport, InForce, Mode};
use crate::seccomp::CompiledFilter;
use crate::spec::{SandboxSpec, SANDBOX_UID};

fn cstring(s: &str, what: &'static str) -> Result<CString, JailError> {
    CString::new(s).map_err(|_| JailError::NulByte(what))
}

pub(super) fn start(spec: &SandboxSpec) -> Result<Live, JailError> {
    let host = probe::host_for(&spec.policy);
    let in_force = probe::decide(&host, &spec.policy).map_err(JailError::Protections)?;
    let cgroup = create_cgroup(spec, &host, &in_force)?;
    // A warm sandbox builds itself at low priority so it never slows the requests being served; the go signal
    // restores normal priority. (Only root may lower a niceness again, so unprivileged pools stay normal.)
    // The cgroup lists the processes to restore at go; without one the sandbox keeps normal priority throughout.
    // (A zygote's child lowers its own priority the same way.)
    let deprioritised = spec.mode.is_pooled() && in_force.mode == Mode::Root && cgroup.is_some();
    if deprioritised {
        // SAFETY: setpriority on the calling process; children inherit the niceness.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    }
    if let Some(zygote) = spec.mode.from_zygote() {
        if in_force.mode != Mode::Root {
            return Err(JailError::ZygoteNeedsRoot);
        }
        let plumbing = Plumbing::new(spec, in_force.mode)?;
        return from_zygote::start(spec, zygote, plumbing, signal_fd()?, cgroup);
    }
    let seccomp = in_force.seccomp.then(CompiledFilter::build).transpose()?;
    let (workspace, workspace_source) = reach_workspace(spec, in_force.mode)?;

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

    let Program { argv, envp, path_var } = Program::of(spec)?;
    let ctx = InitContext {
        plan: root_plan(spec, workspace_source),
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
        zygote: spec.mode.is_zygote(),
        can_setgroups: in_force.mode == Mode::Root,
    };

    let pid1 = clone_pid1(&ctx, spec, in_force.mode)?;
    // From here on, any error must not leave PID 1 behind.
    let abort = |error: JailError| -> JailError {
        let _ = kill(pid1, Signal::SIGKILL);
        let _ = waitpid(pid1, None);
        error
    };
    let pidfd = release_pid1(pid1, spec, in_force.mode, cgroup.as_ref(), &sync_w).map_err(abort)?;
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

/// The run's cgroup, when one of the host's cgroup hierarchies is in force.
fn create_cgroup(spec: &SandboxSpec, host: &HostReport, in_force: &InForce) -> Result<Option<Cgroup>, JailError> {
    match in_force.cgroup {
        Some(version) => Ok(Some(Cgroup::create(
            &host.cgroups,
            version,
            &spec.policy.cgroup_parent,
            &spec.id,
            &spec.limits,
            in_force.cpu_cap,
        )?)),
        None => Ok(None),
    }
}

/// The workspace as PID 1 will reach it. As root it is reached through a detached clone of its mount, made here
/// with the jail's own privileges before the sandbox's user namespace exists: the sandbox's ids then need no
/// access to the directories above it (a data directory under a 0700 parent). An unprivileged jail cannot clone
/// mounts; its PID 1 has the invoking user's ids and opens the path itself. Either way a symlink is refused.
fn reach_workspace(spec: &SandboxSpec, mode: Mode) -> Result<(OwnedFd, WorkspaceSource), JailError> {
    Ok(match mode {
        Mode::Root => {
            let fd = crate::mounts::detached_clone(&spec.workspace)?;
            let raw = fd.as_raw_fd();
            (fd, WorkspaceSource::Detached(raw))
        }
        Mode::Unprivileged => (
            open(
                &spec.workspace,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                FileMode::empty(),
            )
            .map_err(|e| JailError::OpenWorkspace(spec.workspace.clone(), e))?,
            WorkspaceSource::Path(spec.workspace.clone()),
        ),
    })
}

/// What PID 1 builds as the sandbox's root.
fn root_plan(spec: &SandboxSpec, workspace: WorkspaceSource) -> RootPlan {
    let mut host_paths: Vec<PathBuf> = DEFAULT_HOST_PATHS.iter().map(PathBuf::from).collect();
    host_paths.extend(spec.extra_paths.iter().cloned());
    RootPlan {
        host_paths,
        workspace,
        tmp_bytes: spec.limits.tmp_bytes,
        mask_proc: !spec.mode.is_zygote(),
    }
}

/// The program PID 1 executes, as C strings made before the clone (PID 1 allocates nothing it can avoid).
struct Program {
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The sandbox's PATH, which the program's name is looked up in.
    path_var: String,
}

impl Program {
    fn of(spec: &SandboxSpec) -> Result<Program, JailError> {
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
        Ok(Program { argv, envp, path_var })
    }
}

/// Clones PID 1 into fresh namespaces, where it runs [`init::run`] and waits to be released.
fn clone_pid1(ctx: &InitContext<'_>, spec: &SandboxSpec, mode: Mode) -> Result<Pid, JailError> {
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    let mut stack = vec![0u8; 1 << 20];
    // As root, the user namespace is created by a host uid of this sandbox's own, which the kernel charges for
    // the sandbox's per-user counters (see `counters`); the jail is root again right after the clone.
    let acting_as = match mode {
        Mode::Root => Some(counters::ActingAs::owner(counters::namespace_owner(
            spec.policy.namespace_owner_base,
            spec.policy.host_uid,
            std::process::id(),
        )?)?),
        Mode::Unprivileged => None,
    };
    // SAFETY: the jail is single-threaded, so the child starts with a consistent copy of this address space; the
    // callback only reads `ctx` (its own copy after the clone) and never returns into the parent's frames.
    let cloned = unsafe { nix::sched::clone(Box::new(|| init::run(ctx)), &mut stack, flags, Some(libc::SIGCHLD)) };
    drop(acting_as);
    cloned.map_err(JailError::Clone)
}

/// Maps PID 1's uid and gid, puts it in the cgroup, opens its pidfd and releases it (the byte on `sync_w`) to
/// build the sandbox. The caller kills PID 1 if this fails.
fn release_pid1(
    pid1: Pid,
    spec: &SandboxSpec,
    mode: Mode,
    cgroup: Option<&Cgroup>,
    sync_w: &OwnedFd,
) -> Result<OwnedFd, JailError> {
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let (host_uid, host_gid) = match mode {
        Mode::Root => (spec.policy.host_uid, spec.policy.host_uid),
        Mode::Unprivileged => (euid, egid),
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid1}"));
    if mode == Mode::Unprivileged {
        std::fs::write(proc_dir.join("setgroups"), "deny").map_err(|e| JailError::IdMap("setgroups", e))?;
    }
    std::fs::write(proc_dir.join("uid_map"), format!("{SANDBOX_UID} {host_uid} 1\n"))
        .map_err(|e| JailError::IdMap("uid_map", e))?;
    std::fs::write(proc_dir.join("gid_map"), format!("{SANDBOX_UID} {host_gid} 1\n"))
        .map_err(|e| JailError::IdMap("gid_map", e))?;
    if let Some(cg) = cgroup {
        cg.add_process(pid1.as_raw())?;
    }
    let pidfd = pidfd_open(pid1)?;
    nix::unistd::write(sync_w, &[1]).map_err(JailError::ReleasePid1)?;
    Ok(pidfd)
}
