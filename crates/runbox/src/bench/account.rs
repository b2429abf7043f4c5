//! Where the bench's CPU figures come from, and the machine it ran on.
//!
//! CPU per run is the CPU time every process involved spent, divided by the runs completed, read before and after
//! each load phase; every process is counted exactly once:
//! - runbox: the server is started inside a cgroup the bench creates for it (the `host` group: the bench enters
//!   it, spawns the server, and goes back), so the server, every jail it starts and every other host-side process
//!   are charged there; the sandboxes' processes are moved by runbox into run groups under the server's own cgroup
//!   parent (`aggregate.cgroup_parent`, private to the bench), whose counter the kernel charges for every
//!   descendant, alive or removed. The parts printed: the server process itself (`/proc/PID/stat` utime + stime),
//!   the rest of the host group (jails, zygote jails, compilers' supervisors: the host group minus the server) and
//!   the sandboxes' parent group, user and system time apart (`cpuacct.usage_user` and `cpuacct.usage_sys` on
//!   cgroup v1, `user_usec` and `system_usec` of `cpu.stat` on v2; v1 splits by ticks, the sum is exact).
//! - the baseline: the bench's own process (`getrusage(RUSAGE_SELF)`: the spawning and waiting) and its reaped
//!   children (`getrusage(RUSAGE_CHILDREN)`: the programs themselves).
//!
//! The HTTP client's CPU (the bench itself during runbox phases) is not counted: a subprocess service's client
//! would not be either.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};
use runbox_sandbox::cgroup::{CgroupHost, CgroupVersion};
use runbox_sandbox::CgroupPreference;
use serde::Serialize;

/// What one sample reads: named parts, in ns.
pub enum CpuMeter {
    /// Nothing to read (a server of someone else's, `--url`).
    None,
    /// This process and its reaped children.
    Local,
    Server {
        pid: u32,
        host_group: Option<PathBuf>,
        sandboxes: Option<PathBuf>,
        version: CgroupVersion,
    },
}

fn timeval_ns(t: nix::sys::time::TimeVal) -> u64 {
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_usec() as u64 * 1_000
}

fn rusage_ns(who: UsageWho) -> u64 {
    getrusage(who)
        .map(|u| timeval_ns(u.user_time()) + timeval_ns(u.system_time()))
        .unwrap_or(0)
}

/// utime + stime of one process (every thread, not its children), in ns.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces), from field 3 on: utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Some(ticks * 1_000_000_000 / hz)
}

/// The CPU time a group and its descendants used, in ns: (user, system).
fn group_cpu_ns(dir: &Path, version: CgroupVersion) -> Option<(u64, u64)> {
    match version {
        CgroupVersion::V1 => {
            let read = |f: &str| -> Option<u64> { std::fs::read_to_string(dir.join(f)).ok()?.trim().parse().ok() };
            Some((read("cpuacct.usage_user")?, read("cpuacct.usage_sys")?))
        }
        CgroupVersion::V2 => {
            let stat = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
            let field = |k: &str| -> Option<u64> {
                let v = stat.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))?;
                Some(v.trim().parse::<u64>().ok()? * 1000)
            };
            Some((field("user_usec")?, field("system_usec")?))
        }
    }
}

impl CpuMeter {
    pub fn sample(&self) -> Vec<(String, u64)> {
        match self {
            CpuMeter::None => Vec::new(),
            CpuMeter::Local => vec![
                ("bench process (spawn, wait)".into(), rusage_ns(UsageWho::RUSAGE_SELF)),
                ("programs".into(), rusage_ns(UsageWho::RUSAGE_CHILDREN)),
            ],
            CpuMeter::Server {
                pid,
                host_group,
                sandboxes,
                version,
            } => {
                let server = process_cpu_ns(*pid).unwrap_or(0);
                let mut parts = vec![("server process".to_string(), server)];
                if let Some((user, sys)) = host_group.as_deref().and_then(|d| group_cpu_ns(d, *version)) {
                    parts.push(("jails, other host-side".into(), (user + sys).saturating_sub(server)));
                }
                if let Some((user, sys)) = sandboxes.as_deref().and_then(|d| group_cpu_ns(d, *version)) {
                    parts.push(("sandboxes user".into(), user));
                    parts.push(("sandboxes system".into(), sys));
                }
                parts
            }
        }
    }
}

/// The cgroup hierarchy that counts CPU for the version runbox uses here, with that version.
pub fn cpu_hierarchy() -> Option<(PathBuf, CgroupVersion)> {
    let host: CgroupHost = runbox_sandbox::cgroup::detect();
    match host.choose(CgroupPreference::Auto).ok()? {
        CgroupVersion::V1 => host.v1_cpuacct.map(|r| (r, CgroupVersion::V1)),
        CgroupVersion::V2 => host.v2_mount.map(|r| (r, CgroupVersion::V2)),
    }
}

/// A cgroup of the bench's own in the CPU-counting hierarchy; removed on drop (once empty).
pub struct HostGroup {
    pub dir: PathBuf,
    version: CgroupVersion,
    root: PathBuf,
}

impl HostGroup {
    pub fn create(name: &str) -> Option<HostGroup> {
        let (root, version) = cpu_hierarchy()?;
        let dir = root.join(name);
        std::fs::create_dir(&dir).ok()?;
        Some(HostGroup { dir, version, root })
    }

    /// Runs `spawn` with this process inside the group, so that what it starts is born there; then moves this
    /// process back where it was.
    pub fn spawn_inside<T>(&self, spawn: impl FnOnce() -> T) -> T {
        let back = self.own_group();
        let me = std::process::id().to_string();
        let entered = std::fs::write(self.dir.join("cgroup.procs"), &me).is_ok();
        let out = spawn();
        if entered {
            let _ = std::fs::write(back.join("cgroup.procs"), &me);
        }
        out
    }

    fn own_group(&self) -> PathBuf {
        let lines = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let rel = lines.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let wanted = match self.version {
                CgroupVersion::V1 => controllers.split(',').any(|c| c == "cpuacct"),
                CgroupVersion::V2 => controllers.is_empty(),
            };
            wanted.then(|| path.trim_start_matches('/').to_string())
        });
        self.root.join(rel.unwrap_or_default())
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }
}

impl Drop for HostGroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The machine and the conditions of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_gib: f64,
    /// `v1`, `v2` or `hybrid` (both mounted), and the version runbox's sandboxes use here.
    pub cgroup_mounts: String,
    pub cgroup_used: String,
    pub load_average_at_start: String,
    pub build: &'static str,
}

pub fn machine() -> Machine {
    let host = runbox_sandbox::cgroup::detect();
    let v1 = host.v1_memory.is_some() || host.v1_pids.is_some();
    let cgroup_mounts = match (v1, host.v2_mount.is_some()) {
        (true, true) => "hybrid (v1 and v2 mounted)",
        (true, false) => "v1",
        (false, true) => "v2",
        (false, false) => "none",
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo_kb = meminfo_kb("MemTotal").unwrap_or(0);
    Machine {
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| r.trim().to_string())
            .unwrap_or_default(),
        memory_gib: meminfo_kb as f64 / 1048576.0,
        cgroup_mounts: cgroup_mounts.into(),
        cgroup_used: match host.choose(CgroupPreference::Auto) {
            Ok(v) => format!("{v:?}").to_lowercase(),
            Err(why) => why,
        },
        load_average_at_start: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        build: if cfg!(debug_assertions) { "debug" } else { "release" },
    }
}

/// A field of /proc/meminfo, in kB.
pub fn meminfo_kb(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
