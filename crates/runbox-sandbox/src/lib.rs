//! runbox's sandbox: runs one untrusted program and reports exactly what happened.
//!
//! The caller (the CLI or the engine) describes a run with a [`SandboxSpec`] and hands it to a [`Jail`], which
//! starts the jail process (`runbox jail`, see [`jail`]) and speaks the byte [`protocol`] with it. Inside, the
//! program gets fresh user, PID, mount, network, IPC, UTS and cgroup namespaces, a read-only root of allow-listed
//! host paths ([`mounts`]), cgroup limits ([`cgroup`], v1 or v2), a seccomp deny list ([`seccomp`]), Landlock
//! ([`landlock_rules`]), rlimits and no capabilities. [`probe`] says which of these the host offers. Besides one-shot
//! runs, a jail can wait pre-built for a go signal ([`pooled`]) or host a long-lived language worker ([`session`]).
//!
//! We evaluated `hakoniwa` and chose our own enforcement: runbox needs cgroup v1 *and* v2, a PID 1 that reaps and
//! kills the whole tree, and a streaming protocol between jail and caller, all decided in one place. The syscalls
//! go through `nix`, `seccompiler`, `landlock` and `caps`.

pub mod cgroup;
pub mod client;
pub mod jail;
pub mod landlock_rules;
pub mod mounts;
mod net;
pub mod outcome;
pub mod probe;
pub mod protocol;
pub mod seccomp;
pub mod spec;
pub mod workspace;

pub use client::pooled::{self, PooledJail};
pub use client::session::{self, SessionEvent, SessionProcess};
pub use client::{wait_for_teardowns, CancelToken, Jail, OutputStream, SandboxError};
pub use outcome::{JailReport, Outcome, RunRecord, Status};
pub use spec::{
    CgroupPreference, Degradation, FromZygote, HostPolicy, Limits, RunMode, SandboxSpec, DEFAULT_CPU_MILLICORES,
    MIN_CPU_MILLICORES,
};
pub use workspace::Workspace;

/// Identity of this crate's sources (see `build.rs`): two binaries with the same one speak the same jail protocol.
pub const BUILD_ID: &str = env!("RUNBOX_SANDBOX_BUILD_ID");

/// Whether `program` is a jail binary built from these very sandbox sources (`program --build-id` prints ours).
pub fn is_our_jail(program: &std::path::Path) -> bool {
    std::process::Command::new(program)
        .arg("--build-id")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == BUILD_ID.as_bytes())
}
