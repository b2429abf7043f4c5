//! Building a pooled sandbox from a zygote (`workers/zygote.py`) instead of cloning namespaces here.
//!
//! The jail still owns the run: it creates the cgroup and the pipes, and supervises, limits and reports exactly
//! as for a sandbox it built itself. What changes is where PID 1 comes from. The jail sends the zygote one request
//! over its socket with the run's descriptors, among them the workspace as a detached mount (a clone of the
//! host's workspace mount, so files written on either side are the same files). The zygote forks a child that
//! builds fresh namespaces around itself; its PID 1 sends one message, to which the kernel attaches its pid as
//! this jail sees it (SO_PASSCRED), and waits. The jail moves that process into the run's cgroup and only then
//! releases it: nothing of the sandbox can run outside the cgroup. The connection stays open for the jail's life:
//! the child is not the jail's child (no parent-death signal can tie them), so it ends when the connection closes.
//!
//! Why the zygote's child builds its sandbox in Python (`workers/zygote.py`) rather than through `init.rs`: the
//! zygote's whole point is an interpreter already started and warmed, and Python's in-process prelude runs in the
//! child that fork made of it. Handing the child over to this crate's PID 1 would mean an `execve`, which throws
//! that interpreter away; calling this code from Python would mean shipping it as a shared library loaded into
//! the zygote (ctypes), with a C ABI of its own, and a forked child of a multi-threaded-capable runtime running it.
//! Until that is built, the hardening steps exist twice and are held together by tests: the PID 1 messages by
//! `message.rs`'s conformance tests (the zygote's report lines parse as [`super::message::Pid1Message`]), the
//! values the child applies come from this jail in its request (rlimits, counters, clocks, /proc masks) or its
//! kit (the compiled seccomp programs, the Landlock rules), and `crates/runbox/tests/zygote_children_share_nothing.rs`
//! (`a_zygote_child_and_a_sandbox_built_from_scratch_look_the_same_from_inside`) compares what a program sees
//! from inside both kinds of sandbox: status fields, id maps, mounts, Landlock, rlimits, cgroup, namespaces.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{
    connect, recvmsg, sendmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::unistd::Pid;
use serde_json::json;

use super::error::JailError;
use super::live::Live;
use super::message::{Pid1Message, Pid1Reader};
use super::plumbing::Plumbing;
use super::sys::{nonblocking, pidfd_open, pidfd_signal};
use crate::cgroup::Cgroup;
use crate::spec::{FromZygote, SandboxSpec};

/// Longest wait for the zygote's child to report its pid.
const CHILD_DEADLINE: Duration = Duration::from_secs(10);

pub(super) fn start(
    spec: &SandboxSpec,
    zygote: &FromZygote,
    plumbing: Plumbing,
    sigfd: SignalFd,
    cgroup: Option<Cgroup>,
) -> Result<Live, JailError> {
    let workspace = crate::mounts::detached_clone(&spec.workspace).map_err(JailError::ZygoteWorkspace)?;
    let conn = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| JailError::ZygoteSys("socket", e))?;
    // Set before anything is sent, so that the child's message carries its pid.
    setsockopt(&conn, sockopt::PassCred, &true).map_err(|e| JailError::ZygoteSys("SO_PASSCRED", e))?;
    let address = UnixAddr::new(&zygote.socket).map_err(|e| JailError::ZygoteSys("socket path", e))?;
    connect(conn.as_raw_fd(), &address).map_err(|e| JailError::ZygoteConnect(zygote.socket.clone(), e))?;

    let Plumbing {
        stdin: (stdin_r, stdin_w),
        stdout: (stdout_r, stdout_w),
        stderr: (stderr_r, stderr_w),
        report: (report_r, report_w),
        worker: _,
        go,
    } = plumbing;
    let (go_r, go_w) = go.ok_or_else(|| JailError::Zygote("only a pooled sandbox is built from a zygote".into()))?;

    let mut env = SandboxSpec::base_env();
    env.extend(spec.env.clone());
    let limits = &spec.limits;
    let header = json!({
        "tmp_bytes": limits.tmp_bytes,
        "rlimits": {
            "file_size": limits.file_size_bytes,
            "open_files": limits.open_files,
            "cpu_s": limits.cpu_ms.div_ceil(1000) + 1,
            "sigpending": super::counters::SIGPENDING,
            "msgqueue": super::counters::MSGQUEUE_BYTES,
        },
        // Caps on the kernel's per-user counters, which the child writes in its own user namespace.
        "counters": super::counters::sandbox_caps(),
        // What the child hides of the host: its own clocks (when the kernel has time namespaces) and /proc files.
        "clock_start_s": super::host_view::time_namespaces_available().then_some(super::host_view::CLOCK_START_S),
        "proc_masks": super::host_view::proc_masks(),
        "argv": if zygote.in_process { None } else { Some(&spec.argv) },
        "env": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
    });
    let header = serde_json::to_vec(&header).expect("a header always serialises");
    let fds = [&workspace, &stdin_r, &stdout_w, &stderr_w, &report_w, &go_r].map(|fd| fd.as_raw_fd());
    sendmsg::<()>(
        conn.as_raw_fd(),
        &[IoSlice::new(&header)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| JailError::ZygoteSys("send the request", e))?;
    // The sandbox holds its ends now; ours would keep the pipes from ever reporting EOF.
    drop((workspace, stdin_r, stdout_w, stderr_w, report_w, go_r));

    let pid1 = match receive_pid(&conn) {
        Ok(pid) => pid,
        Err(e) => return Err(child_error(&report_r).unwrap_or(e)),
    };
    // The child waits for our byte, so it is alive and its pid is its own while we open the pidfd.
    let pidfd = pidfd_open(pid1)?;
    let release = || -> Result<(), JailError> {
        if let Some(cg) = &cgroup {
            cg.add_process(pid1.as_raw())?;
        }
        nix::unistd::write(&conn, &[1]).map_err(|e| JailError::ZygoteSys("release the sandbox", e))?;
        nonblocking([&stdin_w, &stdout_r, &stderr_r])
    };
    if let Err(e) = release() {
        pidfd_signal(&pidfd, Signal::SIGKILL);
        return Err(e);
    }
    Ok(Live {
        pid1,
        pidfd,
        own_child: false,
        sigfd,
        stdin_w: Some(stdin_w),
        stdout_r: Some(stdout_r),
        stderr_r: Some(stderr_r),
        report_r: Some(report_r),
        worker_r: None,
        go_w: Some(go_w),
        cgroup,
        // The child's PID 1 watches this connection: when it closes (this jail ended, however), the sandbox ends.
        _lifeline: conn,
        reaped: false,
    })
}

/// The pid (in our namespace) of the process that sent the next message on `conn`.
fn receive_pid(conn: &OwnedFd) -> Result<Pid, JailError> {
    let mut poll = [libc::pollfd {
        fd: conn.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: `poll` is a valid one-element array for the duration of the call.
    let n = unsafe { libc::poll(poll.as_mut_ptr(), 1, CHILD_DEADLINE.as_millis() as i32) };
    if n <= 0 {
        return Err(JailError::Zygote("the child did not start in time".into()));
    }
    let mut buf = [0u8; 16];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
    let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| JailError::ZygoteSys("receive the child's pid", e))?;
    if msg.bytes == 0 {
        return Err(JailError::Zygote("the child ended before it was ready".into()));
    }
    for cmsg in msg.cmsgs().map_err(|e| JailError::Zygote(e.to_string()))? {
        if let ControlMessageOwned::ScmCredentials(creds) = cmsg {
            if creds.pid() > 0 {
                return Ok(Pid::from_raw(creds.pid()));
            }
        }
    }
    Err(JailError::Zygote("the child's message carried no pid".into()))
}

/// What the child wrote to the report pipe before it failed, if anything.
fn child_error(report_r: &OwnedFd) -> Option<JailError> {
    let mut buf = [0u8; 4096];
    // The child has ended or never started: whatever it wrote is already in the pipe; do not wait for more.
    nix::fcntl::fcntl(report_r, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).ok()?;
    let n = nix::unistd::read(report_r, &mut buf).ok()?;
    Pid1Reader::default().push(&buf[..n]).into_iter().find_map(|m| match m {
        Pid1Message::Error(text) => Some(JailError::Zygote(text)),
        _ => None,
    })
}
