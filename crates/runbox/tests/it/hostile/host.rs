//! What the host must look like after every case, whatever the case did: no process carrying its marker, and at
//! rest every workspace, workspace mount and cgroup of the server belonging to a live sandbox (one jail each).
//! Warm pools refill and workspaces are torn down on background threads, so "at rest" means: polled until the
//! rules hold, for a bounded time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use runbox_testkit::procs::carrying as marked_processes;
use runbox_testkit::procs::processes;

fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The directories of the server's aggregate cgroup, one per controller hierarchy (v1) or the one (v2).
pub fn cgroup_parents(parent: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("pids").is_dir() {
        ["pids", "memory"].iter().map(|c| root.join(c).join(parent)).collect()
    } else {
        vec![root.join(parent)]
    }
}

fn procs_in_tree(dir: &Path) -> usize {
    let own = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().count())
        .unwrap_or(0);
    own + dir_names(dir)
        .iter()
        .map(|d| procs_in_tree(&dir.join(d)))
        .sum::<usize>()
}

/// One look at the rules; the first broken one, described.
fn tidy_once(data_dir: &Path, cgroup_parent: &str, server_pid: u32) -> Result<(), String> {
    let jails = processes().iter().filter(|&&(_, ppid, _)| ppid == server_pid).count();
    let mut workspaces = Vec::new();
    for sub in ["runs", "sessions"] {
        workspaces.extend(dir_names(&data_dir.join(sub)).into_iter().map(|n| format!("{sub}/{n}")));
    }
    if workspaces.len() > jails {
        return Err(format!(
            "{} workspaces for {jails} live jails: {workspaces:?}",
            workspaces.len()
        ));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", data_dir.display());
    for line in mountinfo.lines() {
        let Some(point) = line.split(' ').nth(4) else { continue };
        if let Some(rest) = point.strip_prefix(&prefix) {
            let top: String = rest.split('/').take(2).collect::<Vec<_>>().join("/");
            if !workspaces.contains(&top) {
                return Err(format!("a mount outlives its workspace: {point}"));
            }
        }
    }
    for parent in cgroup_parents(cgroup_parent) {
        let children = dir_names(&parent);
        if children.len() > jails {
            return Err(format!(
                "{} cgroups in {} for {jails} live jails",
                children.len(),
                parent.display()
            ));
        }
        for child in children {
            if procs_in_tree(&parent.join(&child)) == 0 {
                return Err(format!("empty cgroup left: {}", parent.join(child).display()));
            }
        }
    }
    Ok(())
}

/// Polls until nothing carries `marker` and the server's sandboxes are tidy (`secs` at most).
pub async fn settle(
    marker: &str,
    data_dir: &Path,
    cgroup_parent: &str,
    server_pid: u32,
    secs: u64,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let marked = marked_processes(marker);
        let verdict = if marked.is_empty() {
            tidy_once(data_dir, cgroup_parent, server_pid)
        } else {
            Err(format!("processes left with the case's marker: {marked:?}"))
        };
        match verdict {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(format!("after {secs} s: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The detectors see what they must: a marked host process, and the warm pools as workspaces and cgroups.
pub async fn self_check(data_dir: &std::path::Path, cgroup_parent: &str) -> Result<(), String> {
    let marker = format!("hostile-selfcheck-{}", std::process::id());
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .env("HOSTILE_MARKER", &marker)
        .spawn()
        .map_err(|e| format!("spawn sleep: {e}"))?;
    let seen = marked_processes(&marker).contains(&child.id());
    let _ = child.kill();
    let _ = child.wait();
    if !seen {
        return Err("a host process carrying a marker in its environment was not found".into());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let workspaces = std::fs::read_dir(data_dir.join("runs")).map(|d| d.count()).unwrap_or(0);
        let cgroups = cgroup_parents(cgroup_parent)
            .iter()
            .map(|p| {
                std::fs::read_dir(p)
                    .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(0);
        if workspaces > 0 && cgroups > 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "warm pools never showed: {workspaces} workspaces, {cgroups} cgroups"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
