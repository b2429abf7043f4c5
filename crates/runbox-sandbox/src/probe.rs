//! What this host can do, and which protections a run will have in force under a given policy. `runbox doctor`
//! prints this; the jail uses [`decide`] before every run, so a missing protection fails the run (closed) unless
//! the operator named the degradation.

use serde::Serialize;

use crate::cgroup::{self, CgroupHost, CgroupVersion};
use crate::spec::{Degradation, HostPolicy};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// runbox runs as root: it maps the sandbox user to a dedicated host uid and manages cgroups itself.
    Root,
    /// runbox runs as an ordinary user: the sandbox user maps to that user's own uid.
    Unprivileged,
}

/// The namespaces every sandbox gets.
pub const NAMESPACES: [&str; 7] = ["user", "pid", "mount", "network", "ipc", "uts", "cgroup"];

/// Protections available on this host.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub mode: Mode,
    pub kernel: String,
    /// Namespaces whose /proc/self/ns entry exists (the trial run in `doctor` proves they can be created).
    pub namespaces: Vec<String>,
    pub user_namespaces_enabled: bool,
    pub seccomp: bool,
    pub landlock_abi: Option<u32>,
    pub cgroups: CgroupHost,
}

/// Protections a run has in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InForce {
    pub mode: Mode,
    pub namespaces: Vec<String>,
    pub seccomp: bool,
    pub landlock: bool,
    pub landlock_abi: Option<u32>,
    /// Cgroup version used for memory, pids and CPU accounting, if any.
    pub cgroup: Option<CgroupVersion>,
    /// Every run's CPU bandwidth is capped (`cpu.max` or the v1 CFS quota) at its `cpu_millicores`.
    pub cpu_cap: bool,
    pub no_new_privs: bool,
    pub capabilities_dropped: bool,
    /// Degradations the operator allowed *and* that are in effect.
    pub degraded: Vec<String>,
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn host() -> HostReport {
    host_with(cgroup::detect())
}

/// What a jail runs under `policy`: the host as [`host`] finds it, but with the cgroup hierarchies the server
/// found at start-up when the policy carries them (reading the mount table per run costs more the more
/// workspaces are mounted).
pub fn host_for(policy: &HostPolicy) -> HostReport {
    host_with(policy.cgroup_mounts.clone().unwrap_or_else(cgroup::detect))
}

fn host_with(cgroups: cgroup::CgroupHost) -> HostReport {
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let namespaces = ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup"]
        .iter()
        .filter(|ns| std::path::Path::new("/proc/self/ns").join(ns).exists())
        .map(|s| s.to_string())
        .collect();
    let max_userns: u64 = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let unprivileged_clone = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .map(|s| s.trim() != "0")
        .unwrap_or(true);
    HostReport {
        mode: if is_root() { Mode::Root } else { Mode::Unprivileged },
        kernel,
        namespaces,
        user_namespaces_enabled: max_userns > 0 && (is_root() || unprivileged_clone),
        seccomp: crate::seccomp::available(),
        landlock_abi: crate::landlock_rules::kernel_abi(),
        cgroups,
    }
}

/// Decides what a run gets under `policy`, or says which missing protection forbids running at all.
pub fn decide(host: &HostReport, policy: &HostPolicy) -> Result<InForce, String> {
    if !host.user_namespaces_enabled {
        return Err(
            "user namespaces are disabled on this host (user.max_user_namespaces is 0 or \
                    kernel.unprivileged_userns_clone is 0); the sandbox cannot run"
                .into(),
        );
    }
    if host.namespaces.len() < 7 {
        return Err(format!(
            "the kernel lacks some namespaces (has: {})",
            host.namespaces.join(", ")
        ));
    }
    let allowed = |d: Degradation| policy.degraded.contains(&d);
    let mut degraded = Vec::new();

    let cgroup = match host.cgroups.choose(policy.cgroup) {
        Ok(v) if host.mode == Mode::Root => Some(v),
        Ok(_) | Err(_) if allowed(Degradation::NoCgroups) => {
            degraded.push(Degradation::NoCgroups.name().to_string());
            None
        }
        Ok(_) => {
            return Err(
                "cgroups need root (unprivileged cgroup delegation is not supported yet); \
                        run as root or allow the no-cgroups degradation"
                    .into(),
            )
        }
        Err(why) => {
            return Err(format!(
                "no usable cgroups: {why}; allow the no-cgroups degradation to run anyway"
            ))
        }
    };
    let cpu_cap = match cgroup {
        Some(v) if host.cgroups.cpu_cap_available(v) => true,
        // Without cgroups there is no cap either; the no-cgroups degradation already names that.
        None => false,
        Some(_) if allowed(Degradation::NoCpuCap) => {
            degraded.push(Degradation::NoCpuCap.name().to_string());
            false
        }
        Some(v) => {
            return Err(format!(
                "the cgroup {} hierarchy offers no cpu controller, so a run's CPU bandwidth cannot be capped; \
                 allow the no-cpu-cap degradation to run anyway",
                format!("{v:?}").to_lowercase()
            ))
        }
    };
    let seccomp = if host.seccomp {
        true
    } else if allowed(Degradation::NoSeccomp) {
        degraded.push(Degradation::NoSeccomp.name().to_string());
        false
    } else {
        return Err("seccomp is not available; allow the no-seccomp degradation to run anyway".into());
    };
    let landlock = if host.landlock_abi.is_some() {
        true
    } else if allowed(Degradation::NoLandlock) {
        degraded.push(Degradation::NoLandlock.name().to_string());
        false
    } else {
        return Err("Landlock is not available (kernel too old or not in the lsm= list); \
                    allow the no-landlock degradation to run anyway"
            .into());
    };
    Ok(InForce {
        mode: host.mode,
        namespaces: NAMESPACES.iter().map(|s| s.to_string()).collect(),
        seccomp,
        landlock,
        landlock_abi: host.landlock_abi,
        cgroup,
        cpu_cap,
        no_new_privs: true,
        capabilities_dropped: true,
        degraded,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A root host with every protection, on cgroup v1 with or without the cpu hierarchy.
    fn host(v1_cpu: bool) -> HostReport {
        HostReport {
            mode: Mode::Root,
            kernel: "6.1".into(),
            namespaces: NAMESPACES.iter().map(|s| s.to_string()).collect(),
            user_namespaces_enabled: true,
            seccomp: true,
            landlock_abi: Some(3),
            cgroups: CgroupHost {
                v1_memory: Some(PathBuf::from("/sys/fs/cgroup/memory")),
                v1_pids: Some(PathBuf::from("/sys/fs/cgroup/pids")),
                v1_cpu: v1_cpu.then(|| PathBuf::from("/sys/fs/cgroup/cpu")),
                ..CgroupHost::default()
            },
        }
    }

    fn policy(degraded: &[Degradation]) -> HostPolicy {
        HostPolicy {
            degraded: degraded.iter().copied().collect(),
            ..HostPolicy::default()
        }
    }

    #[test]
    fn the_cpu_cap_is_in_force_when_the_cpu_controller_is_there() {
        let f = decide(&host(true), &policy(&[])).unwrap();
        assert!(f.cpu_cap);
        assert!(f.degraded.is_empty());
    }

    #[test]
    fn a_missing_cpu_controller_refuses_runs_unless_no_cpu_cap_is_allowed() {
        let err = decide(&host(false), &policy(&[])).unwrap_err();
        assert!(err.contains("no-cpu-cap"), "{err}");
        let f = decide(&host(false), &policy(&[Degradation::NoCpuCap])).unwrap();
        assert!(!f.cpu_cap);
        assert_eq!(f.degraded, ["no-cpu-cap"]);
    }

    #[test]
    fn without_cgroups_there_is_no_cpu_cap_and_only_no_cgroups_is_named() {
        let mut h = host(false);
        h.cgroups = CgroupHost::default();
        let f = decide(&h, &policy(&[Degradation::NoCgroups])).unwrap();
        assert_eq!((f.cgroup, f.cpu_cap), (None, false));
        assert_eq!(f.degraded, ["no-cgroups"]);
    }

    /// A jail takes the cgroup hierarchies the server found (it does not read the mount table per run), and looks
    /// for itself when the policy carries none.
    #[test]
    fn a_jail_uses_the_cgroup_hierarchies_its_policy_carries() {
        let known = host(true).cgroups;
        let mut p = policy(&[]);
        p.cgroup_mounts = Some(known.clone());
        assert_eq!(host_for(&p).cgroups, known);
        p.cgroup_mounts = None;
        assert_eq!(host_for(&p).cgroups, crate::cgroup::detect());
        // The spec the jail reads carries them through JSON.
        let json = serde_json::to_string(&HostPolicy {
            cgroup_mounts: Some(known.clone()),
            ..HostPolicy::default()
        })
        .unwrap();
        let back: HostPolicy = serde_json::from_str(&json).unwrap();
        assert_eq!(back.cgroup_mounts, Some(known));
    }
}
