//! What can go wrong while the jail builds a sandbox, one variant per step, each carrying its context (after
//! Firecracker's jailer). The jail reports it as the run's `sandbox_error` message; PID 1 sends it to the jail as
//! a [`Pid1Message::Error`](super::message::Pid1Message::Error). The texts are the ones the jail always wrote.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;
use thiserror::Error;

use crate::cgroup::CgroupError;
use crate::mounts::MountError;
use crate::seccomp::SeccompError;

#[derive(Debug, Error)]
pub enum JailError {
    #[error("a sandbox is built from a zygote only when runbox runs as root")]
    ZygoteNeedsRoot,
    /// A protection the host lacks and the operator did not accept running without.
    #[error("{0}")]
    Protections(String),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("open workspace {0}: {1}")]
    OpenWorkspace(PathBuf, Errno),
    #[error("{0} contains a NUL byte")]
    NulByte(&'static str),
    #[error("no namespace owner uid from base {base} and pid {jail_pid}")]
    NoNamespaceOwner { base: u32, jail_pid: u32 },
    #[error("namespace owner uid {0} is the sandbox's own uid")]
    OwnerIsSandboxUid(u32),
    #[error("act as namespace owner {0}: {1}")]
    ActAsOwner(u32, io::Error),
    #[error("clone the sandbox's namespaces: {0}")]
    Clone(Errno),
    /// Writing one of PID 1's `setgroups`, `uid_map` or `gid_map`.
    #[error("write {0}: {1}")]
    IdMap(&'static str, io::Error),
    #[error("release PID 1: {0}")]
    ReleasePid1(Errno),
    /// A system call (named) of the jail or PID 1 failed, as nix reports it.
    #[error("{0}: {1}")]
    Sys(&'static str, Errno),
    /// A system call (named) of the jail or PID 1 failed, as the OS reports it.
    #[error("{0}: {1}")]
    Os(&'static str, io::Error),
    #[error("{0}: {1}")]
    Caps(&'static str, caps::errors::CapsError),
    #[error("drop {0:?} capabilities: {1}")]
    DropCaps(caps::CapSet, caps::errors::CapsError),
    #[error("cap /proc/sys/user/{0}: {1}")]
    CapCounter(&'static str, io::Error),
    #[error("write timens_offsets: {0}")]
    TimeOffsets(io::Error),
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    Landlock(String),
    #[error("landlock: the kernel offers no Landlock")]
    NoLandlock,
    #[error("landlock: the kernel did not enforce the ruleset")]
    LandlockNotEnforced,
    #[error("write the zygote's kit")]
    ZygoteKit,
    #[error("chdir /workspace: {0}")]
    Chdir(io::Error),
    #[error("cannot execute {0}: not found in PATH")]
    NotInPath(String),
    #[error("cannot execute {program}: {}", source.desc())]
    Exec { program: String, source: Errno },
    /// Building a sandbox from a zygote: a step of the jail's side failed.
    #[error("zygote: {0}: {1}")]
    ZygoteSys(&'static str, Errno),
    #[error("zygote: connect {0}: {1}")]
    ZygoteConnect(PathBuf, Errno),
    #[error("zygote: {0}")]
    ZygoteWorkspace(MountError),
    /// Building a sandbox from a zygote: what went wrong, in words (the zygote's child's own report included).
    #[error("zygote: {0}")]
    Zygote(String),
}

impl JailError {
    /// The OS error of a failed libc call just made, for the step `what`.
    pub(crate) fn last_os(what: &'static str) -> JailError {
        JailError::Os(what, io::Error::last_os_error())
    }
}
