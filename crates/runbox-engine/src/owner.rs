//! Who owns a data directory's runs, and sweeping what a dead owner left.
//!
//! Every engine (a server, or a CLI run) holds a shared `flock` on `<data dir>/owner.lock` for its whole life; the
//! jails it starts do not inherit it. Every engine, when it starts (`crate::host::Host::start`, before it runs
//! anything), asks for the lock exclusively for a moment, without waiting: if it gets it, no live process has runs
//! in this directory, so whatever is under `runs/` and `sessions/` was left by one that died without cleaning up
//! (killed outright), and is swept before anything runs again — every process of those sandboxes (through their
//! cgroups), the cgroups, the workspaces and their mounts. When another engine is alive (a server, or a concurrent
//! `runbox run`), nothing is swept: its runs are its own, and the starting engine does not wait for it.

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

/// Takes an engine's share of `data_dir` (the lock file is created if needed). `None` when the lock file cannot be
/// opened: then this engine can sweep nothing (nothing of ours could be there either).
pub(crate) fn claim(data_dir: &Path) -> Option<File> {
    let _ = std::fs::create_dir_all(data_dir);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(data_dir.join("owner.lock"))
        .ok()?;
    flock(&file, libc::LOCK_SH);
    Some(file)
}

/// Sweeps `data_dir` if `lock` (our shared lock) can become exclusive, i.e. no other owner is alive; the lock is
/// shared again afterwards.
pub(crate) fn sweep(lock: &File, data_dir: &Path, policy: &HostPolicy) -> Swept {
    let mut swept = Swept::default();
    // A failed conversion drops our shared lock (flock converts by unlocking first): it is taken again below.
    if flock(lock, libc::LOCK_EX | libc::LOCK_NB) {
        // The hierarchies found at start when the policy carries them (reading the mount table costs).
        let hierarchies = policy
            .cgroup_mounts
            .clone()
            .unwrap_or_else(runbox_sandbox::cgroup::detect);
        let parents = [data_dir.join("runs"), data_dir.join("sessions")];
        let (cgroups, workspaces) =
            runbox_sandbox::workspace::sweep_leftovers(&parents, &hierarchies, &policy.cgroup_parent);
        swept = Swept { cgroups, workspaces };
    }
    flock(lock, libc::LOCK_SH);
    swept
}
