//! cgroup v1: one directory per controller hierarchy (memory, pids, cpuacct, cpu), each limited separately.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    cpu_quota_us, io_err, kill_procs_until_empty, procs, read_keyed, read_u64, remove_dir, write_file, CgroupError,
    CgroupHost, CPU_PERIOD_US, TEARDOWN_PATIENCE,
};
use crate::spec::Limits;

#[derive(Debug)]
pub struct CgroupV1 {
    memory: PathBuf,
    pids: PathBuf,
    cpuacct: Option<PathBuf>,
    /// The group in the cpu hierarchy when the bandwidth is capped and that hierarchy is not cpuacct's.
    cpu: Option<PathBuf>,
}

fn make_dir(root: &Path, parent: &str, name: &str) -> Result<PathBuf, CgroupError> {
    let parent_dir = root.join(parent);
    if !parent_dir.exists() {
        std::fs::create_dir_all(&parent_dir).map_err(io_err("create", &parent_dir))?;
    }
    let dir = parent_dir.join(name);
    std::fs::create_dir(&dir).map_err(io_err("create", &dir))?;
    Ok(dir)
}

impl CgroupV1 {
    /// Creates the run's group in each hierarchy; with `cpu_cap`, in the cpu hierarchy too, with the CFS quota of
    /// `limits.cpu_millicores` (an error when that hierarchy is missing).
    pub fn create(
        host: &CgroupHost,
        parent: &str,
        name: &str,
        limits: &Limits,
        cpu_cap: bool,
    ) -> Result<CgroupV1, CgroupError> {
        let missing = || CgroupError::Unavailable("v1 memory and pids hierarchies are required".into());
        let memory = make_dir(host.v1_memory.as_ref().ok_or_else(missing)?, parent, name)?;
        let group = CgroupV1 {
            memory,
            pids: PathBuf::new(),
            cpuacct: None,
            cpu: None,
        };
        // From here on, dropping `group` removes what was created.
        let mut group = group;
        group.pids = make_dir(host.v1_pids.as_ref().ok_or_else(missing)?, parent, name)?;
        if let Some(root) = &host.v1_cpuacct {
            group.cpuacct = Some(make_dir(root, parent, name)?);
        }
        if cpu_cap {
            let root = host
                .v1_cpu
                .as_ref()
                .ok_or_else(|| CgroupError::Unavailable("the v1 cpu hierarchy is not mounted".into()))?;
            // cpu and cpuacct are often mounted together (cpu,cpuacct): then the group exists already.
            let dir = if host.v1_cpuacct.as_ref() == Some(root) {
                group.cpuacct.clone().unwrap_or_default()
            } else {
                let dir = make_dir(root, parent, name)?;
                group.cpu = Some(dir.clone());
                dir
            };
            // The period first: a quota is checked against the period in force when it is written.
            write_file(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
            write_file(
                &dir.join("cpu.cfs_quota_us"),
                &cpu_quota_us(limits.cpu_millicores).to_string(),
            )?;
        }
        let bytes = limits.memory_bytes.to_string();
        write_file(&group.memory.join("memory.limit_in_bytes"), &bytes)?;
        // With swap accounting, memsw caps memory+swap so the limit cannot be dodged by swapping.
        let memsw = group.memory.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write_file(&memsw, &bytes)?;
        }
        write_file(&group.pids.join("pids.max"), &limits.processes.to_string())?;
        Ok(group)
    }

    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.memory, &self.pids]
            .into_iter()
            .chain(self.cpuacct.as_ref())
            .chain(self.cpu.as_ref())
            .filter(|p| !p.as_os_str().is_empty())
    }

    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    pub fn cpu_usage(&self) -> Option<Duration> {
        read_u64(&self.cpuacct.as_ref()?.join("cpuacct.usage")).map(Duration::from_nanos)
    }

    pub fn memory_peak(&self) -> Option<u64> {
        read_u64(&self.memory.join("memory.max_usage_in_bytes"))
    }

    pub fn oom_kills(&self) -> u64 {
        read_keyed(&self.memory.join("memory.oom_control"), "oom_kill").unwrap_or(0)
    }

    pub fn kill_all(&self) {
        // The pids hierarchy sees every task; freeze-free killing is enough because the pid namespace is already
        // gone (or going) by the time this runs, so nothing can fork faster than we kill.
        kill_procs_until_empty(&self.pids);
        kill_procs_until_empty(&self.memory);
    }

    pub fn pids(&self) -> Vec<i32> {
        procs(&self.pids)
    }

    pub fn is_empty(&self) -> bool {
        self.dirs().all(|d| procs(d).is_empty())
    }
}

impl Drop for CgroupV1 {
    fn drop(&mut self) {
        self.kill_all();
        for dir in self.dirs() {
            remove_dir(dir, TEARDOWN_PATIENCE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_host(dir: &Path, cpu_with_cpuacct: bool) -> CgroupHost {
        let root = |name: &str| {
            let p = dir.join(name);
            std::fs::create_dir_all(&p).unwrap();
            Some(p)
        };
        let cpuacct = root(if cpu_with_cpuacct { "cpu,cpuacct" } else { "cpuacct" });
        CgroupHost {
            v1_memory: root("memory"),
            v1_pids: root("pids"),
            v1_cpu: if cpu_with_cpuacct { cpuacct.clone() } else { root("cpu") },
            v1_cpuacct: cpuacct,
            ..CgroupHost::default()
        }
    }

    fn quota_and_period(dir: &Path) -> (String, String) {
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us"))
    }

    #[test]
    fn the_cfs_quota_is_written_in_the_cpu_hierarchy() {
        let dir = tempfile::tempdir().unwrap();
        let host = fake_host(dir.path(), false);
        let limits = Limits {
            cpu_millicores: 500,
            ..Limits::default()
        };
        let group = CgroupV1::create(&host, "rb", "run", &limits, true).unwrap();
        let expected = ("50000".to_string(), "100000".to_string());
        assert_eq!(quota_and_period(&dir.path().join("cpu/rb/run")), expected);
        std::mem::forget(group);
    }

    #[test]
    fn a_cpu_hierarchy_mounted_with_cpuacct_gets_one_group() {
        let dir = tempfile::tempdir().unwrap();
        let host = fake_host(dir.path(), true);
        let group = CgroupV1::create(&host, "rb", "run", &Limits::default(), true).unwrap();
        let expected = ("100000".to_string(), "100000".to_string());
        assert_eq!(quota_and_period(&dir.path().join("cpu,cpuacct/rb/run")), expected);
        assert_eq!(group.dirs().count(), 3, "memory, pids and the shared cpu,cpuacct group");
        std::mem::forget(group);
    }

    #[test]
    fn a_cpu_cap_without_the_cpu_hierarchy_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let host = CgroupHost {
            v1_cpu: None,
            ..fake_host(dir.path(), false)
        };
        let err = CgroupV1::create(&host, "rb", "run", &Limits::default(), true).unwrap_err();
        assert!(err.to_string().contains("cpu hierarchy"), "{err}");
    }
}
