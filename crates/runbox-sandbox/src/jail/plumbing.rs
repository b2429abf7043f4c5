//! The pipes between the jail and the program, made the same way whichever way the sandbox is built (cloned here
//! or forked by a zygote), and handed to the sandbox user so that the program can reopen them by path.

use std::os::fd::OwnedFd;

use super::error::JailError;
use super::sys::pipe;
use crate::probe::Mode;
use crate::spec::SandboxSpec;

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
    pub(super) fn new(spec: &SandboxSpec, mode: Mode) -> Result<Plumbing, JailError> {
        let plumbing = Plumbing {
            stdin: pipe()?,
            stdout: pipe()?,
            stderr: pipe()?,
            report: pipe()?,
            worker: if spec.mode.is_session() { Some(pipe()?) } else { None },
            go: if spec.mode.is_pooled() { Some(pipe()?) } else { None },
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
                nix::unistd::fchown(fd, owner, group).map_err(|e| JailError::Sys("fchown a pipe", e))?;
            }
        }
        Ok(plumbing)
    }
}
