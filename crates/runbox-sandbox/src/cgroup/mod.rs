//! Control groups: the only reliable way to cap memory, count processes and sum CPU time over a whole process
//! tree. Hosts differ (pure v2 on most production machines, v1 controllers on older or hybrid ones), so both are
//! implemented behind one type and [`detect`] says which one this host offers.

mod parent;
mod v1;
mod v2;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::spec::{CgroupPreference, Limits};

#[derive(Debug, Error)]
pub enum CgroupError {
    #[error("cgroup: cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup: {0}")]
    Unavailable(String),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(io_err("write", path))
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Value of `key` in a flat keyed file such as `memory.events` or `cpu.stat`.
fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// What this host offers, found by reading /proc/self/mountinfo and the controller lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CgroupHost {
    /// Mount point of the unified (v2) hierarchy, if any.
    pub v2_mount: Option<PathBuf>,
    /// Controllers the v2 root offers.
    pub v2_controllers: Vec<String>,
    /// v1 hierarchies by controller name.
    pub v1_memory: Option<PathBuf>,
    pub v1_pids: Option<PathBuf>,
    pub v1_cpuacct: Option<PathBuf>,
    /// The v1 `cpu` hierarchy (CFS bandwidth control); often the same mount as `cpuacct`.
    pub v1_cpu: Option<PathBuf>,
}

impl CgroupHost {
    /// The root of every hierarchy runbox makes groups in, each once (`cpu` and `cpuacct` are often one mount),
    /// pids before memory: a sweep that kills stops forks first.
    pub fn hierarchies(&self) -> Vec<&Path> {
        let mut roots: Vec<&Path> = Vec::new();
        for root in [
            &self.v2_mount,
            &self.v1_pids,
            &self.v1_memory,
            &self.v1_cpuacct,
            &self.v1_cpu,
        ]
        .into_iter()
        .flatten()
        {
            if !roots.contains(&root.as_path()) {
                roots.push(root);
            }
        }
        roots
    }

    pub fn v2_usable(&self) -> bool {
        self.v2_mount.is_some()
            && ["memory", "pids"]
                .iter()
                .all(|c| self.v2_controllers.iter().any(|x| x == c))
    }

    pub fn v1_usable(&self) -> bool {
        self.v1_memory.is_some() && self.v1_pids.is_some()
    }

    /// Whether runs under `version` can have their CPU bandwidth capped: the v2 root offers the cpu controller, or
    /// a v1 cpu hierarchy is mounted.
    pub fn cpu_cap_available(&self, version: CgroupVersion) -> bool {
        match version {
            CgroupVersion::V2 => self.v2_controllers.iter().any(|c| c == "cpu"),
            CgroupVersion::V1 => self.v1_cpu.is_some(),
        }
    }

    /// The version runs will use under `pref`, or why none can be used.
    pub fn choose(&self, pref: CgroupPreference) -> Result<CgroupVersion, String> {
        match pref {
            CgroupPreference::V2 if self.v2_usable() => Ok(CgroupVersion::V2),
            CgroupPreference::V2 => Err(match &self.v2_mount {
                None => "no cgroup v2 hierarchy is mounted".into(),
                Some(m) => format!(
                    "cgroup v2 at {} lacks the memory and pids controllers (has: {})",
                    m.display(),
                    if self.v2_controllers.is_empty() {
                        "none".into()
                    } else {
                        self.v2_controllers.join(" ")
                    }
                ),
            }),
            CgroupPreference::V1 if self.v1_usable() => Ok(CgroupVersion::V1),
            CgroupPreference::V1 => Err("cgroup v1 memory and pids hierarchies are not both mounted".into()),
            CgroupPreference::Auto => self
                .choose(CgroupPreference::V2)
                .or_else(|v2| self.choose(CgroupPreference::V1).map_err(|v1| format!("{v2}; {v1}"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Reads the cgroup mounts of this host.
pub fn detect() -> CgroupHost {
    let mut host = CgroupHost::default();
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return host;
    };
    for line in mountinfo.lines() {
        // mountinfo: id parent major:minor root mountpoint options [optional...] - fstype source superoptions
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split(' ').nth(4).map(PathBuf::from);
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or("");
        let super_opts = right.nth(1).unwrap_or("");
        let Some(mount_point) = mount_point else { continue };
        match fstype {
            "cgroup2" if host.v2_mount.is_none() => {
                let controllers = fs::read_to_string(mount_point.join("cgroup.controllers")).unwrap_or_default();
                host.v2_controllers = controllers.split_whitespace().map(String::from).collect();
                host.v2_mount = Some(mount_point);
            }
            "cgroup" => {
                for opt in super_opts.split(',') {
                    let slot = match opt {
                        "memory" => &mut host.v1_memory,
                        "pids" => &mut host.v1_pids,
                        "cpuacct" => &mut host.v1_cpuacct,
                        "cpu" => &mut host.v1_cpu,
                        _ => continue,
                    };
                    slot.get_or_insert_with(|| mount_point.clone());
                }
            }
            _ => {}
        }
    }
    host
}

/// One run's cgroup (one directory per v1 hierarchy, or one v2 directory).
#[derive(Debug)]
pub enum Cgroup {
    V1(v1::CgroupV1),
    V2(v2::CgroupV2),
}

impl Cgroup {
    /// Creates the run's cgroup under `parent` and applies the limits; with `cpu_cap`, the CPU bandwidth limit
    /// too (an error if it cannot be applied: the caller decided it must be in force).
    pub fn create(
        host: &CgroupHost,
        version: CgroupVersion,
        parent: &str,
        name: &str,
        limits: &Limits,
        cpu_cap: bool,
    ) -> Result<Cgroup, CgroupError> {
        match version {
            CgroupVersion::V1 => v1::CgroupV1::create(host, parent, name, limits, cpu_cap).map(Cgroup::V1),
            CgroupVersion::V2 => {
                let root = host
                    .v2_mount
                    .as_ref()
                    .ok_or_else(|| CgroupError::Unavailable("no v2 mount".into()))?;
                let cpu = cpu_cap.then_some(limits.cpu_millicores);
                v2::CgroupV2::create(root, parent, name, Some(limits), cpu).map(Cgroup::V2)
            }
        }
    }

    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.add_process(pid),
            Cgroup::V2(c) => c.add_process(pid),
        }
    }

    /// CPU time used by every process of the group, alive or dead.
    pub fn cpu_usage(&self) -> Option<Duration> {
        match self {
            Cgroup::V1(c) => c.cpu_usage(),
            Cgroup::V2(c) => c.cpu_usage(),
        }
    }

    pub fn memory_peak(&self) -> Option<u64> {
        match self {
            Cgroup::V1(c) => c.memory_peak(),
            Cgroup::V2(c) => c.memory_peak(),
        }
    }

    /// How many times the kernel's OOM killer killed a process of this group.
    pub fn oom_kills(&self) -> u64 {
        match self {
            Cgroup::V1(c) => c.oom_kills(),
            Cgroup::V2(c) => c.oom_kills(),
        }
    }

    /// SIGKILLs every process in the group and waits (bounded) until it is empty.
    pub fn kill_all(&self) {
        match self {
            Cgroup::V1(c) => c.kill_all(),
            Cgroup::V2(c) => c.kill_all(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Cgroup::V1(c) => c.is_empty(),
            Cgroup::V2(c) => c.is_empty(),
        }
    }

    /// Processes in the group now.
    pub fn pids(&self) -> Vec<i32> {
        match self {
            Cgroup::V1(c) => c.pids(),
            Cgroup::V2(c) => procs(c.path()),
        }
    }
}

/// How old an empty group must be before it counts as left behind.
const LEFTOVER_AGE: Duration = Duration::from_secs(600);

/// Removes the empty groups under `parent` in every hierarchy that are older than ten minutes: left behind by jails
/// that were killed outright. A group that holds processes, or was just created, is left alone.
pub fn remove_empty_leftovers(host: &CgroupHost, parent: &str) -> usize {
    let mut removed = 0;
    for root in host.hierarchies() {
        let Ok(entries) = fs::read_dir(root.join(parent)) else {
            continue;
        };
        for entry in entries.flatten() {
            // A jail creates its group a moment before it moves PID 1 in: only old empty groups are leftovers.
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > LEFTOVER_AGE));
            if old && entry.file_type().is_ok_and(|t| t.is_dir()) && procs(&entry.path()).is_empty() {
                removed += usize::from(fs::remove_dir(entry.path()).is_ok());
            }
        }
    }
    removed
}

/// Kills every process in the groups under `parent` (in every hierarchy) whose name `left_behind` picks, and
/// removes those groups: what jails killed outright left, swept by the next owner of their runs. Returns how many
/// groups were removed.
pub fn kill_leftovers(host: &CgroupHost, parent: &str, left_behind: impl Fn(&str) -> bool) -> usize {
    let mut removed = 0;
    for root in host.hierarchies() {
        let Ok(entries) = fs::read_dir(root.join(parent)) else {
            continue;
        };
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !is_dir || !left_behind(&entry.file_name().to_string_lossy()) {
                continue;
            }
            let dir = entry.path();
            // v2 ends the whole group at once; v1 (and a v2 without cgroup.kill) one listed process at a time.
            let kill = dir.join("cgroup.kill");
            if kill.exists() {
                let _ = write_file(&kill, "1");
            }
            kill_procs_until_empty(&dir);
            removed += usize::from(remove_dir(&dir, SWEEP_PATIENCE));
        }
    }
    removed
}

/// Period of the CPU bandwidth cap: the kernel's default, 100 ms.
const CPU_PERIOD_US: u64 = 100_000;

/// Quota per [`CPU_PERIOD_US`] for `millicores` thousandths of a core (1000 = one core's worth per period).
fn cpu_quota_us(millicores: u32) -> u64 {
    CPU_PERIOD_US * u64::from(millicores) / 1000
}

/// Pids listed in a `cgroup.procs` file.
fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills every listed process until the group is empty or a deadline passes.
fn kill_procs_until_empty(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = procs(dir);
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            // SAFETY: kill(2) with a pid read from the group's own procs file; no memory is touched.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How long a sandbox's jail keeps trying to remove the sandbox's groups (it has reported by then, so nobody
/// waits on it). The kernel can take seconds to finish a killed process's exit when the host stalls (a soak saw
/// groups left behind when this was one second); a group left behind is only swept at the next start.
pub(crate) const TEARDOWN_PATIENCE: Duration = Duration::from_secs(30);
/// How long the start-up sweep tries per group: a group stuck for good must not hold the start up.
const SWEEP_PATIENCE: Duration = Duration::from_secs(1);

/// Removes a cgroup directory, retrying (5 ms apart at first, then up to 100 ms) while the kernel finishes tearing
/// down its last processes, for at most `patience`. Says whether the directory is gone.
fn remove_dir(dir: &Path, patience: Duration) -> bool {
    let deadline = std::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(_) if std::time::Instant::now() >= deadline => return false,
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        }
    }
}

pub use parent::limit_parent;
pub use v2::CgroupV2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hierarchy_is_listed_once_even_when_cpu_and_cpuacct_share_a_mount() {
        let mut h = host(None, true);
        assert_eq!(h.hierarchies().len(), 4, "pids, memory, cpuacct and cpu apart");
        h.v1_cpu = h.v1_cpuacct.clone();
        assert_eq!(h.hierarchies().len(), 3);
        assert_eq!(h.hierarchies()[0], Path::new("/sys/fs/cgroup/pids"), "pids first");
    }

    #[test]
    fn a_group_that_takes_seconds_to_empty_is_still_removed_at_teardown() {
        // A directory that cannot be removed for 1.5 s (a file in it stands for a process still exiting): the
        // teardown waits it out; the start-up sweep gives up after its second.
        let base = tempfile::tempdir().unwrap();
        let busy = |name: &str| {
            let dir = base.path().join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("exiting"), b"").unwrap();
            let file = dir.join("exiting");
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1500));
                fs::remove_file(file).unwrap();
            });
            dir
        };
        let swept = busy("swept");
        assert!(
            !remove_dir(&swept, SWEEP_PATIENCE),
            "the sweep gives up after its second"
        );
        let torn_down = busy("torn-down");
        assert!(remove_dir(&torn_down, TEARDOWN_PATIENCE));
        assert!(!torn_down.exists());
    }

    fn host(v2: Option<&[&str]>, v1: bool) -> CgroupHost {
        CgroupHost {
            v2_mount: v2.map(|_| PathBuf::from("/sys/fs/cgroup")),
            v2_controllers: v2.unwrap_or(&[]).iter().map(|s| s.to_string()).collect(),
            v1_memory: v1.then(|| PathBuf::from("/sys/fs/cgroup/memory")),
            v1_pids: v1.then(|| PathBuf::from("/sys/fs/cgroup/pids")),
            v1_cpuacct: v1.then(|| PathBuf::from("/sys/fs/cgroup/cpuacct")),
            v1_cpu: v1.then(|| PathBuf::from("/sys/fs/cgroup/cpu")),
        }
    }

    #[test]
    fn cpu_cap_needs_the_cpu_controller_of_the_chosen_version() {
        assert!(host(Some(&["cpu", "memory", "pids"]), false).cpu_cap_available(CgroupVersion::V2));
        assert!(!host(Some(&["memory", "pids"]), false).cpu_cap_available(CgroupVersion::V2));
        assert!(host(Some(&[]), true).cpu_cap_available(CgroupVersion::V1));
        let no_cpu = CgroupHost {
            v1_cpu: None,
            ..host(None, true)
        };
        assert!(!no_cpu.cpu_cap_available(CgroupVersion::V1));
    }

    #[test]
    fn cpu_quota_is_millicores_of_the_period() {
        assert_eq!(cpu_quota_us(1000), 100_000);
        assert_eq!(cpu_quota_us(2500), 250_000);
        assert_eq!(cpu_quota_us(10), 1_000);
    }

    #[test]
    fn pure_v2_host_uses_v2() {
        let h = host(Some(&["cpu", "memory", "pids"]), false);
        assert_eq!(h.choose(CgroupPreference::Auto), Ok(CgroupVersion::V2));
        assert!(h.choose(CgroupPreference::V1).is_err());
    }

    #[test]
    fn hybrid_host_without_v2_controllers_uses_v1() {
        let h = host(Some(&[]), true);
        assert_eq!(h.choose(CgroupPreference::Auto), Ok(CgroupVersion::V1));
        let err = h.choose(CgroupPreference::V2).unwrap_err();
        assert!(err.contains("lacks the memory and pids controllers"), "{err}");
    }

    #[test]
    fn host_without_cgroups_says_why() {
        let err = host(None, false).choose(CgroupPreference::Auto).unwrap_err();
        assert!(err.contains("no cgroup v2") && err.contains("v1"), "{err}");
    }

    #[test]
    fn keyed_files_are_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memory.events");
        fs::write(&f, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n").unwrap();
        assert_eq!(read_keyed(&f, "oom_kill"), Some(2));
        assert_eq!(read_keyed(&f, "missing"), None);
    }
}
