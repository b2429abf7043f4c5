//! The raw system calls of the jail's host side, each wrapped once: pipes, the signal descriptor, pidfds and
//! non-blocking reads. Kept apart so that starting and supervising a sandbox read as steps, not as syscalls.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::unistd::{pipe2, Pid};

use super::error::JailError;

pub(super) fn pipe() -> Result<(OwnedFd, OwnedFd), JailError> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| JailError::Sys("pipe", e))
}

/// Holds the signals the supervisor handles and returns the descriptor that delivers them.
pub(super) fn signal_fd() -> Result<SignalFd, JailError> {
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
    signals.thread_block().map_err(|e| JailError::Sys("block signals", e))?;
    SignalFd::with_flags(&signals, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC).map_err(|e| JailError::Sys("signalfd", e))
}

/// A pidfd for `pid`, which must be alive (and, if not our child, pinned some other way).
pub(super) fn pidfd_open(pid: Pid) -> Result<OwnedFd, JailError> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor, which we own.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if pidfd < 0 {
        return Err(JailError::last_os("pidfd_open"));
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
pub(super) fn nonblocking(fds: [&OwnedFd; 3]) -> Result<(), JailError> {
    for fd in fds {
        fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| JailError::Sys("fcntl", e))?;
    }
    Ok(())
}

pub(super) fn read_chunk(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        match nix::unistd::read(fd, buf) {
            Ok(n) => return Some(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return None,
            Err(_) => return Some(0),
        }
    }
}

/// Borrowed view of a raw descriptor the process keeps open for its whole life (fd 0).
pub(super) struct OwnedFdRef(pub(super) RawFd);

impl OwnedFdRef {
    pub(super) fn owned(&self) -> std::mem::ManuallyDrop<OwnedFd> {
        // SAFETY: fd 0 stays open for the life of the jail; ManuallyDrop keeps it from being closed here.
        std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(self.0) })
    }
}
