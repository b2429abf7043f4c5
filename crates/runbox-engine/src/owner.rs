//! Who owns a data directory's runs, and sweeping what a dead owner left.
//!
//! Every engine (a server, or a CLI run) holds a shared `flock` on `<data dir>/owner.lock` for its whole life; the
//! jails it starts do not inherit it. An engine that finds the lock free, taken exclusively for a moment, knows
//! that no live process has runs in this directory: whatever is under `runs/` and `sessions/` was left by one that
//! died without cleaning up (killed outright), and is swept before anything runs again — every process of those
//! sandboxes (through their cgroups), the cgroups, the workspaces and their mounts. When another engine is alive,
//! nothing is swept: its runs are its own.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use runbox_sandbox::HostPolicy;

/// What an engine swept at start: cgroups and workspaces a dead predecessor left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub cgroups: usize,
    pub workspaces: usize,
}

fn flock(file: &File, operation: libc::c_int) -> bool {
    // SAFETY: flock on a descriptor we own; no memory is passed.
    unsafe { libc::flock(file.as_raw_fd(), operation) == 0 }
}

/// Takes this engine's share of `data_dir` (the lock file is created if needed), sweeping first when no other
/// owner is alive. `None` when the lock file cannot be opened: then nothing is swept (nothing of ours could be
/// there) and runs fail or succeed on their own.
pub(crate) fn claim(data_dir: &Path, policy: &HostPolicy) -> (Option<File>, Swept) {
    let _ = std::fs::create_dir_all(data_dir);
    let Ok(file) = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(data_dir.join("owner.lock"))
    else {
        return (None, Swept::default());
    };
    let mut swept = Swept::default();
    if flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        let host = runbox_sandbox::probe::host();
        let parents = [data_dir.join("runs"), data_dir.join("sessions")];
        let (cgroups, workspaces) =
            runbox_sandbox::workspace::sweep_leftovers(&parents, &host.cgroups, &policy.cgroup_parent);
        swept = Swept { cgroups, workspaces };
    }
    // Shared from now on (waiting, if another engine is sweeping, until it is done).
    flock(&file, libc::LOCK_SH);
    (Some(file), swept)
}
