//! The parent cgroup of every sandbox of one server: limits written there cap all of runbox together (memory,
//! memory+swap where accounted, processes), whatever each sandbox's own limits add up to. The kernel charges a
//! child's usage to every ancestor (v1 with `memory.use_hierarchy`, which is set here; always in v2 and for pids).

use std::path::{Path, PathBuf};

use super::{io_err, write_file, CgroupError, CgroupHost, CgroupVersion};

/// Creates the parent group `parent` in each hierarchy the sandboxes use and writes the limits there. Returns the
/// files written. An error means the caps are not in force; the caller must not start sandboxes then.
pub fn limit_parent(
    host: &CgroupHost,
    version: CgroupVersion,
    parent: &str,
    memory_bytes: u64,
    processes: u64,
) -> Result<Vec<PathBuf>, CgroupError> {
    let missing = |what: &str| CgroupError::Unavailable(format!("no {what} hierarchy for the parent group"));
    let mut written = Vec::new();
    let mut set = |file: PathBuf, value: &str| -> Result<(), CgroupError> {
        write_file(&file, value)?;
        written.push(file);
        Ok(())
    };
    let memory = memory_bytes.to_string();
    let pids = processes.to_string();
    match version {
        CgroupVersion::V1 => {
            let mem_dir = make(host.v1_memory.as_ref().ok_or_else(|| missing("v1 memory"))?, parent)?;
            let hierarchy = mem_dir.join("memory.use_hierarchy");
            if std::fs::read_to_string(&hierarchy).is_ok_and(|v| v.trim() == "0") {
                set(hierarchy, "1")?;
            }
            // memsw must stay at least the memory limit: raise it first when raising, lower it last when lowering.
            let limit = mem_dir.join("memory.limit_in_bytes");
            let memsw = mem_dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                if write_file(&limit, &memory).is_err() {
                    set(memsw.clone(), &memory)?;
                }
                set(limit, &memory)?;
                set(memsw, &memory)?;
            } else {
                set(limit, &memory)?;
            }
            let pids_dir = make(host.v1_pids.as_ref().ok_or_else(|| missing("v1 pids"))?, parent)?;
            set(pids_dir.join("pids.max"), &pids)?;
        }
        CgroupVersion::V2 => {
            let root = host.v2_mount.as_ref().ok_or_else(|| missing("v2"))?;
            let dir = make(root, parent)?;
            // The parent's own limits need the controllers enabled in every ancestor down to it.
            let mut ancestor = root.clone();
            for comp in Path::new(parent).components() {
                enable(&ancestor)?;
                ancestor = ancestor.join(comp);
            }
            set(dir.join("memory.max"), &memory)?;
            set(dir.join("pids.max"), &pids)?;
        }
    }
    Ok(written)
}

fn make(root: &Path, parent: &str) -> Result<PathBuf, CgroupError> {
    let dir = root.join(parent);
    std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    Ok(dir)
}

/// Enables the memory and pids controllers for the children of `dir` (v2), and cpu where `dir` offers it (the
/// runs' CPU bandwidth cap needs it in every ancestor; whether runs may go without is the protections decision's).
fn enable(dir: &Path) -> Result<(), CgroupError> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).map_err(io_err("read", &control))?;
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let cpu = available.split_whitespace().any(|c| c == "cpu").then_some("cpu");
    for ctrl in ["memory", "pids"].into_iter().chain(cpu) {
        if !enabled.split_whitespace().any(|c| c == ctrl) {
            write_file(&control, &format!("+{ctrl}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake v1 layout in a temporary directory: the limits land in the parent of each hierarchy.
    #[test]
    fn v1_limits_are_written_to_the_parent_of_each_hierarchy() {
        let dir = tempfile::tempdir().unwrap();
        let (mem, pids) = (dir.path().join("memory"), dir.path().join("pids"));
        let host = CgroupHost {
            v1_memory: Some(mem.clone()),
            v1_pids: Some(pids.clone()),
            ..CgroupHost::default()
        };
        std::fs::create_dir_all(mem.join("rb")).unwrap();
        std::fs::write(mem.join("rb/memory.use_hierarchy"), "0\n").unwrap();
        let written = limit_parent(&host, CgroupVersion::V1, "rb", 1 << 30, 500).unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(mem.join("rb/memory.limit_in_bytes")), (1u64 << 30).to_string());
        assert_eq!(read(mem.join("rb/memory.use_hierarchy")), "1");
        assert_eq!(read(pids.join("rb/pids.max")), "500");
        assert_eq!(written.len(), 3, "{written:?}");
    }

    /// A fake v2 layout: controllers are enabled down to the parent and its limits written.
    #[test]
    fn v2_limits_are_written_with_controllers_enabled_on_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/cgroup.subtree_control"), "memory pids").unwrap();
        let host = CgroupHost {
            v2_mount: Some(root.clone()),
            ..CgroupHost::default()
        };
        limit_parent(&host, CgroupVersion::V2, "a/b", 256 << 20, 64).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("a/b/memory.max"), (256u64 << 20).to_string());
        assert_eq!(read("a/b/pids.max"), "64");
        // A regular file stands in for the kernel's: the last controller written is what it holds.
        assert_eq!(read("cgroup.subtree_control"), "+pids");
        assert_eq!(
            read("a/cgroup.subtree_control"),
            "memory pids",
            "already enabled: left alone"
        );
        // Without the hierarchy, nothing is claimed to be in force.
        assert!(limit_parent(&CgroupHost::default(), CgroupVersion::V2, "a", 1, 1).is_err());
    }
}
