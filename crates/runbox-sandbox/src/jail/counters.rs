//! The kernel's per-user counters (ucounts: inotify instances and watches, queued signals, POSIX message queue
//! bytes, namespaces, ...) and who a sandbox's use of them is charged to.
//!
//! The kernel charges a process's use to its uid in its own user namespace and then, one level up at a time, to
//! the uid that created each user namespace. A namespace created by host root charged every sandbox to host uid 0:
//! one sandbox holding 128 inotify instances or ~96,000 queued signals made root's own `inotify_init1` and
//! `sigqueue` fail. So, when runbox runs as root, the jail creates each sandbox's user namespace as a host uid of its
//! own ([`namespace_owner`]: a configurable base plus the jail's pid, unique among live jails, never root, never a
//! uid the server or a program runs as); the sandbox's files still belong to the one mapped sandbox uid. Inside the
//! namespace, [`limit_own_namespace`] caps the counters the kernel lets a namespace cap (`/proc/sys/user/max_*`),
//! and PID 1 sets `RLIMIT_SIGPENDING` and `RLIMIT_MSGQUEUE` for every process of the sandbox.
//!
//! A zygote's children (`workers/zygote.py`) are namespaces the zygote creates, so they are charged to the
//! zygote's sandbox uid inside the zygote's namespace and, above it, to the zygote jail's owner uid: never root,
//! shared by the children of one zygote (each capped on its own by the same values, sent in its request).

use super::error::JailError;

/// `RLIMIT_SIGPENDING` of every process of a sandbox: signals queued to one process at once (what `sigqueue`,
/// POSIX timers and real-time signals use).
pub const SIGPENDING: u64 = 1024;
/// `RLIMIT_MSGQUEUE` of every process of a sandbox: bytes of POSIX message queues (the Linux default).
pub const MSGQUEUE_BYTES: u64 = 819_200;

/// Caps written to `/proc/sys/user/<name>` in a sandbox's own user namespace, by its PID 1 before it drops its
/// capabilities. A file this kernel lacks is skipped (the counter does not exist); a write that fails stops the run.
pub const NAMESPACE_COUNTERS: &[(&str, u64, &str)] = &[
    (
        "max_inotify_instances",
        128,
        "the host's usual per-user figure; file watchers (Node, Python tools) open a few",
    ),
    (
        "max_inotify_watches",
        16_384,
        "enough for a watcher over a large source tree",
    ),
    ("max_fanotify_groups", 0, "fanotify_init is refused by seccomp anyway"),
    ("max_fanotify_marks", 0, "as above"),
];

/// Namespace counters, capped at 0 in a sandbox (seccomp refuses the calls too: a second wall). Not in a zygote's
/// own namespace, whose children are namespaces.
pub const NO_NAMESPACES: &[&str] = &[
    "max_user_namespaces",
    "max_pid_namespaces",
    "max_mnt_namespaces",
    "max_net_namespaces",
    "max_ipc_namespaces",
    "max_uts_namespaces",
    "max_cgroup_namespaces",
    "max_time_namespaces",
];

/// Every cap for a sandbox that runs programs, as (file name, value), limited to the counters this kernel has.
pub fn sandbox_caps() -> Vec<(&'static str, u64)> {
    NAMESPACE_COUNTERS
        .iter()
        .map(|&(name, value, _)| (name, value))
        .chain(NO_NAMESPACES.iter().map(|&name| (name, 0)))
        .filter(|(name, _)| std::path::Path::new("/proc/sys/user").join(name).exists())
        .collect()
}

/// The host uid that creates (and owns) the user namespace of the sandbox whose jail has pid `jail_pid`.
pub fn namespace_owner(base: u32, host_uid: u32, jail_pid: u32) -> Result<u32, JailError> {
    let owner = base
        .checked_add(jail_pid)
        .filter(|&o| o != 0 && o != u32::MAX && base > 0)
        .ok_or(JailError::NoNamespaceOwner { base, jail_pid })?;
    if owner == host_uid {
        return Err(JailError::OwnerIsSandboxUid(owner));
    }
    Ok(owner)
}

/// Caps this process's user namespace's counters (the process must hold CAP_SYS_RESOURCE in it). A zygote's own
/// namespace keeps its namespace counters.
pub fn limit_own_namespace(zygote: bool) -> Result<(), JailError> {
    for (name, value) in sandbox_caps() {
        if zygote && NO_NAMESPACES.contains(&name) {
            continue;
        }
        std::fs::write(format!("/proc/sys/user/{name}"), value.to_string())
            .map_err(|e| JailError::CapCounter(name, e))?;
    }
    Ok(())
}

/// Lowers `RLIMIT_SIGPENDING` and `RLIMIT_MSGQUEUE` of the calling process (inherited by its children) to
/// [`SIGPENDING`] and [`MSGQUEUE_BYTES`], or keeps them where the operator set them lower.
pub fn limit_queues() -> Result<(), JailError> {
    for (resource, value, what) in [
        (libc::RLIMIT_SIGPENDING, SIGPENDING, "RLIMIT_SIGPENDING"),
        (libc::RLIMIT_MSGQUEUE, MSGQUEUE_BYTES, "RLIMIT_MSGQUEUE"),
    ] {
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills the struct we pass.
        if unsafe { libc::getrlimit(resource, &mut current) } != 0 {
            return Err(JailError::last_os(what));
        }
        let value = value.min(current.rlim_max);
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(JailError::last_os(what));
        }
    }
    Ok(())
}

/// While alive, the calling (single-threaded, root) process acts as `owner`: what it creates now, such as a user
/// namespace, is owned by and charged to `owner`. Dropping it makes the process root again.
pub struct ActingAs(());

impl ActingAs {
    pub fn owner(owner: u32) -> Result<ActingAs, JailError> {
        // SAFETY: setresuid with plain integers; -1 keeps the real and saved uids (root), so the drop can return.
        if unsafe { libc::setresuid(u32::MAX, owner, u32::MAX) } != 0 {
            return Err(JailError::ActAsOwner(owner, std::io::Error::last_os_error()));
        }
        Ok(ActingAs(()))
    }
}

impl Drop for ActingAs {
    fn drop(&mut self) {
        // SAFETY: setresuid with plain integers. The saved uid is 0, so this cannot fail; if it did, the jail
        // could not go on as root: end it rather than continue half-privileged.
        if unsafe { libc::setresuid(u32::MAX, 0, u32::MAX) } != 0 {
            // SAFETY: _exit ends the process at once.
            unsafe { libc::_exit(1) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_never_root_nor_the_sandbox_uid_nor_wraps() {
        assert_eq!(namespace_owner(1_000_000_000, 200_000, 4242).ok(), Some(1_000_004_242));
        assert!(namespace_owner(0, 200_000, 0).is_err());
        assert!(namespace_owner(0, 200_000, 5).is_err());
        assert!(namespace_owner(199_990, 200_000, 10).is_err());
        assert!(namespace_owner(u32::MAX - 1, 200_000, 1).is_err());
        assert!(namespace_owner(u32::MAX - 1, 200_000, 2).is_err());
    }

    #[test]
    fn counter_caps_name_each_counter_once() {
        let names: Vec<&str> = NAMESPACE_COUNTERS
            .iter()
            .map(|c| c.0)
            .chain(NO_NAMESPACES.iter().copied())
            .collect();
        let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len());
    }
}
