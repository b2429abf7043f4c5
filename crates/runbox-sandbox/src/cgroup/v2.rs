//! cgroup v2: one directory in the unified hierarchy, with `cgroup.kill` to end every process at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    cpu_quota_us, io_err, kill_procs_until_empty, procs, read_keyed, read_u64, remove_dir, write_file, CgroupError,
    CPU_PERIOD_US, TEARDOWN_PATIENCE,
};
use crate::spec::Limits;

#[derive(Debug)]
pub struct CgroupV2 {
    dir: PathBuf,
}

impl CgroupV2 {
    /// Creates `root/parent/name`. With `limits`, the memory and pids controllers are enabled on the way down and
    /// the limits applied; without, the group only tracks and kills (usable on a v2 mount with no controllers).
    /// With `cpu_millicores`, the cpu controller is required too and `cpu.max` caps the group's bandwidth.
    pub fn create(
        root: &Path,
        parent: &str,
        name: &str,
        limits: Option<&Limits>,
        cpu_millicores: Option<u32>,
    ) -> Result<CgroupV2, CgroupError> {
        let parent_dir = root.join(parent);
        if !parent_dir.exists() {
            std::fs::create_dir_all(&parent_dir).map_err(io_err("create", &parent_dir))?;
        }
        if limits.is_some() || cpu_millicores.is_some() {
            // Controllers must be enabled in every ancestor's subtree_control; the parent holds no processes so
            // the no-internal-process rule is respected.
            let need_cpu = cpu_millicores.is_some();
            enable_controllers(root, need_cpu)?;
            enable_controllers(&parent_dir, need_cpu)?;
        }
        let dir = parent_dir.join(name);
        std::fs::create_dir(&dir).map_err(io_err("create", &dir))?;
        let group = CgroupV2 { dir };
        if let Some(limits) = limits {
            write_file(&group.dir.join("memory.max"), &limits.memory_bytes.to_string())?;
            let swap = group.dir.join("memory.swap.max");
            if swap.exists() {
                write_file(&swap, "0")?;
            }
            // Kill the whole group on OOM rather than one process, so a run never limps on half-dead.
            let oom_group = group.dir.join("memory.oom.group");
            if oom_group.exists() {
                write_file(&oom_group, "1")?;
            }
            write_file(&group.dir.join("pids.max"), &limits.processes.to_string())?;
        }
        if let Some(millicores) = cpu_millicores {
            let value = format!("{} {CPU_PERIOD_US}", cpu_quota_us(millicores));
            write_file(&group.dir.join("cpu.max"), &value)?;
        }
        Ok(group)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        write_file(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    pub fn cpu_usage(&self) -> Option<Duration> {
        read_keyed(&self.dir.join("cpu.stat"), "usage_usec").map(Duration::from_micros)
    }

    pub fn memory_peak(&self) -> Option<u64> {
        read_u64(&self.dir.join("memory.peak"))
    }

    pub fn oom_kills(&self) -> u64 {
        read_keyed(&self.dir.join("memory.events"), "oom_kill").unwrap_or(0)
    }

    pub fn kill_all(&self) {
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() && write_file(&kill, "1").is_ok() {
            for _ in 0..1000 {
                if self.is_empty() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        kill_procs_until_empty(&self.dir);
    }

    pub fn is_empty(&self) -> bool {
        procs(&self.dir).is_empty()
    }
}

/// Enables memory, pids and (when offered, or required by `need_cpu`) cpu for the children of `dir`.
fn enable_controllers(dir: &Path, need_cpu: bool) -> Result<(), CgroupError> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).map_err(io_err("read", &control))?;
    for ctrl in ["memory", "pids", "cpu"] {
        if enabled.split_whitespace().any(|c| c == ctrl) {
            continue;
        }
        let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        if available.split_whitespace().any(|c| c == ctrl) {
            write_file(&control, &format!("+{ctrl}"))?;
        } else if ctrl != "cpu" || need_cpu {
            return Err(CgroupError::Unavailable(format!(
                "controller {ctrl} is not available in {}",
                dir.display()
            )));
        }
    }
    Ok(())
}

impl Drop for CgroupV2 {
    fn drop(&mut self) {
        self.kill_all();
        remove_dir(&self.dir, TEARDOWN_PATIENCE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake v2 hierarchy in a temporary directory (regular files stand in for the kernel's).
    fn fake_root(controllers: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in [dir.path().to_path_buf(), dir.path().join("rb")] {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cgroup.controllers"), controllers).unwrap();
            std::fs::write(d.join("cgroup.subtree_control"), "").unwrap();
        }
        dir
    }

    #[test]
    fn cpu_max_holds_the_runs_millicores_over_a_100_ms_period() {
        let root = fake_root("cpu memory pids");
        let group = CgroupV2::create(root.path(), "rb", "run", Some(&Limits::default()), Some(2500)).unwrap();
        let cpu_max = std::fs::read_to_string(group.path().join("cpu.max")).unwrap();
        assert_eq!(cpu_max, "250000 100000");
        // Regular files cannot be removed like a kernel's group: leave the directory to the TempDir.
        std::mem::forget(group);
    }

    #[test]
    fn a_cpu_cap_without_the_cpu_controller_is_an_error_not_skipped() {
        let root = fake_root("memory pids");
        let err = CgroupV2::create(root.path(), "rb", "run", Some(&Limits::default()), Some(1000)).unwrap_err();
        assert!(err.to_string().contains("cpu"), "{err}");
        // Without a cap asked for, the same host still gives a group (the protections decision allowed that).
        let group = CgroupV2::create(root.path(), "rb", "run2", Some(&Limits::default()), None).unwrap();
        assert!(!group.path().join("cpu.max").exists());
        std::mem::forget(group);
    }
}
