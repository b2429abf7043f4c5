//! What a caller asks of one sandboxed run: the program, its environment and its limits.
//!
//! These types cross a process boundary (the caller serialises them to the jail as JSON), so they are plain data
//! with serde derives and defaults that are safe on their own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The uid and gid the program runs as inside the sandbox.
pub const SANDBOX_UID: u32 = 1000;
/// Host uid/gid that [`SANDBOX_UID`] maps to when runbox runs as root: an id no host account uses.
pub const DEFAULT_HOST_UID: u32 = 200_000;
/// First of the host uids that create (and so own) sandboxes' user namespaces when runbox runs as root: each
/// sandbox's is this plus its jail's pid (see `jail::counters`), so the kernel's per-user counters are charged to a
/// uid of its own, never to root.
pub const DEFAULT_NAMESPACE_OWNER_BASE: u32 = 1_000_000_000;

/// CPU bandwidth a run gets unless it asks for another: one core.
pub const DEFAULT_CPU_MILLICORES: u32 = 1000;
/// Least CPU bandwidth a run may be given: 10 ms of CPU per 100 ms period (the kernel's floor is 1 ms).
pub const MIN_CPU_MILLICORES: u32 = 10;

/// Resource limits of one run. Every field has a default that is safe for a Python or shell program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time before SIGINT, then SIGKILL after `grace_ms`.
    pub wall_ms: u64,
    /// CPU time of all processes of the run together.
    pub cpu_ms: u64,
    /// CPU bandwidth of all processes of the run together, in thousandths of a core (1000 = one core): the cgroup's
    /// `cpu.max` (v2) or `cpu.cfs_quota_us` over a 100 ms period (v1). However many threads the program starts, it
    /// gets at most this much CPU per unit of wall time.
    pub cpu_millicores: u32,
    /// Memory of all processes together (cgroup limit, page cache and tmpfs included).
    pub memory_bytes: u64,
    /// Processes and threads alive at once (cgroup pids).
    pub processes: u32,
    /// Largest file the program may write (RLIMIT_FSIZE).
    pub file_size_bytes: u64,
    /// Open file descriptors per process (RLIMIT_NOFILE).
    pub open_files: u64,
    /// Size of the private /tmp (and /dev/shm) tmpfs.
    pub tmp_bytes: u64,
    /// Bytes of stdout, and separately of stderr, kept; past it the run stops with `output_limit`.
    pub output_bytes: u64,
    /// Time between SIGINT and SIGKILL when the wall time runs out.
    pub grace_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall_ms: 10_000,
            cpu_ms: 10_000,
            cpu_millicores: DEFAULT_CPU_MILLICORES,
            memory_bytes: 256 << 20,
            processes: 64,
            file_size_bytes: 64 << 20,
            open_files: 256,
            tmp_bytes: 64 << 20,
            output_bytes: 1 << 20,
            grace_ms: 500,
        }
    }
}

/// A protection the operator may knowingly run without. Security fails closed: a missing protection is an error
/// unless its degradation is named here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Degradation {
    /// Run without cgroups: no memory, process-count, total CPU or CPU bandwidth limit.
    NoCgroups,
    /// Run with cgroups but without the CPU bandwidth cap (the host's cgroups lack the cpu controller).
    NoCpuCap,
    /// Run without the seccomp filter.
    NoSeccomp,
    /// Run without Landlock.
    NoLandlock,
}

impl Degradation {
    pub const ALL: [Degradation; 4] = [
        Degradation::NoCgroups,
        Degradation::NoCpuCap,
        Degradation::NoSeccomp,
        Degradation::NoLandlock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Degradation::NoCgroups => "no-cgroups",
            Degradation::NoCpuCap => "no-cpu-cap",
            Degradation::NoSeccomp => "no-seccomp",
            Degradation::NoLandlock => "no-landlock",
        }
    }

    pub fn parse(s: &str) -> Option<Degradation> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// Which cgroup version to use. `Auto` picks v2 when its memory and pids controllers are available, else v1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupPreference {
    #[default]
    Auto,
    V1,
    V2,
}

/// Host-wide settings: the same for every run of one server or CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostPolicy {
    /// Host uid (and gid) the sandbox user maps to when running as root.
    pub host_uid: u32,
    /// When running as root: each sandbox's user namespace is created by host uid `namespace_owner_base + the
    /// jail's pid`, to which the kernel charges the sandbox's use of its per-user counters.
    pub namespace_owner_base: u32,
    /// Protections the operator accepts running without.
    pub degraded: BTreeSet<Degradation>,
    pub cgroup: CgroupPreference,
    /// Name of the parent cgroup created under each hierarchy.
    pub cgroup_parent: String,
    /// The cgroup hierarchies of this host as the server found them at start-up, so that a jail need not read
    /// the host's whole mount table again for every run (its cost grows with every mounted workspace); `None`:
    /// the jail looks for itself.
    pub cgroup_mounts: Option<crate::cgroup::CgroupHost>,
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            host_uid: DEFAULT_HOST_UID,
            namespace_owner_base: DEFAULT_NAMESPACE_OWNER_BASE,
            degraded: BTreeSet::new(),
            cgroup: CgroupPreference::Auto,
            cgroup_parent: "runbox".to_string(),
            cgroup_mounts: None,
        }
    }
}

/// One run: the program to execute inside `/workspace` and everything it may see and use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// Unique name of the run (used for the cgroup); letters, digits, `-` and `_`.
    pub id: String,
    /// Program and arguments. A bare program name is looked up in the sandbox's PATH.
    pub argv: Vec<String>,
    /// The whole environment of the program; nothing of the host's environment leaks in.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Host directory mounted read-write at `/workspace`.
    pub workspace: PathBuf,
    /// Host paths bound read-only at the same place, beyond the default allow-list.
    #[serde(default)]
    pub extra_paths: Vec<PathBuf>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub policy: HostPolicy,
    /// What kind of run this is: one program to completion, a session's worker, a warm sandbox or a zygote.
    #[serde(default)]
    pub mode: RunMode,
}

/// The kinds of run a jail supervises. One enum, so that only the combinations that exist can be asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RunMode {
    /// One program run to completion: stdin streamed in, output and one report out.
    #[default]
    OneShot,
    /// Session mode: the program is a long-lived language worker. The caller's byte stream goes to the program's
    /// fd 3 (its stdin is /dev/null), whatever the program writes to fd 4 comes back as worker frames, and
    /// SIGUSR1 to the jail interrupts the program (SIGINT) instead of ending the run.
    Session,
    /// Pooled mode (a warm sandbox): the program starts at once but blocks on its fd 3 until the caller writes a
    /// go message on the jail's stdin (the wall and CPU limits, [`crate::protocol::Go`]); the jail acknowledges it
    /// with a `Started` frame and the limits count from then. A message that does not parse ends the run before
    /// the program is let go. The jail sends a `Ready` frame once the sandbox is built.
    Pooled {
        /// Build this sandbox from a zygote instead of creating namespaces here: the jail keeps its cgroup,
        /// limits, output and report, and the zygote's child becomes the sandbox's PID 1.
        #[serde(default)]
        from_zygote: Option<FromZygote>,
    },
    /// Zygote mode (a session whose worker is a warm pool's zygote, `workers/zygote.py`), which forks one child
    /// per sandbox and never runs user code itself. It runs without the seccomp filter and Landlock (its children
    /// need `unshare` and `mount` to build their sandboxes) and instead receives, for its children to apply, the
    /// compiled seccomp programs on fd 5 and the Landlock ruleset on fd 6.
    Zygote,
}

impl RunMode {
    /// A long-lived worker speaks through fds 3 and 4 and is interrupted by SIGUSR1 (a session or a zygote).
    pub fn is_session(&self) -> bool {
        matches!(self, RunMode::Session | RunMode::Zygote)
    }

    /// A warm sandbox that waits for its go message.
    pub fn is_pooled(&self) -> bool {
        matches!(self, RunMode::Pooled { .. })
    }

    pub fn is_zygote(&self) -> bool {
        matches!(self, RunMode::Zygote)
    }

    /// The zygote that builds this (pooled) sandbox, if one does.
    pub fn from_zygote(&self) -> Option<&FromZygote> {
        match self {
            RunMode::Pooled { from_zygote } => from_zygote.as_ref(),
            _ => None,
        }
    }
}

/// Which zygote builds a sandbox, and what its child runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromZygote {
    /// The zygote's socket (on the host).
    pub socket: PathBuf,
    /// The child runs the zygote's own prelude in its already-started interpreter (Python) instead of
    /// executing `argv`.
    pub in_process: bool,
}

impl SandboxSpec {
    /// A one-shot run of `argv` in `workspace` with the default environment, limits and host policy; set the
    /// other fields (or use struct update syntax) for anything else.
    pub fn new(id: impl Into<String>, argv: Vec<String>, workspace: impl Into<PathBuf>) -> SandboxSpec {
        SandboxSpec {
            id: id.into(),
            argv,
            env: BTreeMap::new(),
            workspace: workspace.into(),
            extra_paths: Vec::new(),
            limits: Limits::default(),
            policy: HostPolicy::default(),
            mode: RunMode::OneShot,
        }
    }

    /// The environment every program starts with; `env` entries override these.
    pub fn base_env() -> BTreeMap<String, String> {
        [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", "/workspace"),
            ("TMPDIR", "/tmp"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
            ("USER", "runbox"),
            ("LOGNAME", "runbox"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Checks what can be checked before any process starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("invalid run id {:?}", self.id));
        }
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err("argv is empty".into());
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err("argv contains a NUL byte".into());
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(format!("invalid environment variable name or value: {k:?}"));
            }
        }
        if !self.workspace.is_absolute() {
            return Err(format!(
                "workspace {} is not an absolute path",
                self.workspace.display()
            ));
        }
        for p in &self.extra_paths {
            if !p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(format!("extra path {} must be absolute, without ..", p.display()));
            }
        }
        let l = &self.limits;
        if l.wall_ms == 0 || l.cpu_ms == 0 || l.processes == 0 || l.open_files < 16 {
            return Err("limits must be positive (open_files at least 16)".into());
        }
        if l.cpu_millicores < MIN_CPU_MILLICORES {
            return Err(format!(
                "CPU bandwidth must be at least {MIN_CPU_MILLICORES} millicores"
            ));
        }
        if l.memory_bytes < (8 << 20) {
            return Err("memory limit must be at least 8 MiB".into());
        }
        if l.tmp_bytes < 4096 {
            return Err("tmp limit must be at least 4 KiB".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_mode_crosses_to_the_jail_intact() {
        let modes = [
            RunMode::OneShot,
            RunMode::Session,
            RunMode::Pooled { from_zygote: None },
            RunMode::Pooled {
                from_zygote: Some(FromZygote {
                    socket: "/run/z.sock".into(),
                    in_process: true,
                }),
            },
            RunMode::Zygote,
        ];
        for mode in modes {
            let spec = SandboxSpec {
                mode: mode.clone(),
                ..SandboxSpec::new("r1", vec!["true".into()], "/w")
            };
            let back: SandboxSpec = serde_json::from_slice(&serde_json::to_vec(&spec).unwrap()).unwrap();
            assert_eq!(back, spec);
            assert_eq!(back.validate(), Ok(()));
        }
    }

    #[test]
    fn a_spec_without_a_mode_is_a_one_shot_run() {
        let spec: SandboxSpec = serde_json::from_str(r#"{"id":"a","argv":["true"],"workspace":"/w"}"#).unwrap();
        assert_eq!(spec.mode, RunMode::OneShot);
        assert!(!spec.mode.is_session() && !spec.mode.is_pooled());
    }
}
