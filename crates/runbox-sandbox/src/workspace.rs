//! A run's workspace on the host: a directory the sandbox sees as `/workspace`. As root it is a size-limited tmpfs
//! owned by the sandbox's host uid, so a program cannot fill the host's disk; it is unmounted and removed on drop.

use std::fs;
use std::os::unix::fs::{chown, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WorkspaceError {
    #[error("workspace: cannot {action} {path}: {reason}")]
    Io {
        action: &'static str,
        path: PathBuf,
        reason: String,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WorkspaceError + 'a {
    move |e| WorkspaceError::Io {
        action,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

#[derive(Debug)]
pub struct Workspace {
    path: PathBuf,
    mounted: bool,
    owner: Option<u32>,
}

impl Workspace {
    /// Creates `parent/name`. With `size_bytes` and root, mounts a tmpfs of that size there. With `owner`
    /// (root mode: the sandbox's host uid), the directory belongs to that uid and gid.
    pub fn create(
        parent: &Path,
        name: &str,
        size_bytes: Option<u64>,
        owner: Option<u32>,
    ) -> Result<Workspace, WorkspaceError> {
        // Workspaces hold tenants' code and files: a parent made here is private (the sandbox attaches its
        // workspace through a mount the jail clones, and never needs to pass through the parent).
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io("create", parent))?;
        let path = parent.join(name);
        fs::create_dir(&path).map_err(io("create", &path))?;
        let mut ws = Workspace {
            path,
            mounted: false,
            owner,
        };
        if let (Some(size), true) = (size_bytes, crate::probe::is_root()) {
            let uid = owner.unwrap_or(0);
            let options = format!("size={size},mode=0755,uid={uid},gid={uid}");
            mount(
                Some("tmpfs"),
                &ws.path,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .map_err(|e| WorkspaceError::Io {
                action: "mount a tmpfs on",
                path: ws.path.clone(),
                reason: e.to_string(),
            })?;
            ws.mounted = true;
        }
        if let Some(uid) = owner {
            chown(&ws.path, Some(uid), Some(uid)).map_err(io("chown", &ws.path))?;
        }
        fs::set_permissions(&ws.path, fs::Permissions::from_mode(0o755)).map_err(io("chmod", &ws.path))?;
        Ok(ws)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file at `relative` (parents created), owned by the sandbox user. `relative` must already be
    /// validated by the caller as confined to the workspace.
    pub fn write_file(&self, relative: &Path, content: &[u8]) -> Result<(), WorkspaceError> {
        let dest = self.path.join(relative);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io("create", parent))?;
            self.chown_tree_to(parent);
        }
        fs::write(&dest, content).map_err(io("write", &dest))?;
        if let Some(uid) = self.owner {
            chown(&dest, Some(uid), Some(uid)).map_err(io("chown", &dest))?;
        }
        Ok(())
    }

    /// Creates a directory (and parents) owned by the sandbox user.
    pub fn create_dir(&self, relative: &Path) -> Result<(), WorkspaceError> {
        let dest = self.path.join(relative);
        fs::create_dir_all(&dest).map_err(io("create", &dest))?;
        self.chown_tree_to(&dest);
        Ok(())
    }

    fn chown_tree_to(&self, dir: &Path) {
        let Some(uid) = self.owner else { return };
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if d == self.path || !d.starts_with(&self.path) {
                break;
            }
            let _ = chown(d, Some(uid), Some(uid));
            cur = d.parent();
        }
    }
}

/// Unmounts and removes every workspace left under `parent` by a process that died without cleaning up (a server
/// killed outright). Call it only where no live process owns workspaces under `parent`.
pub fn remove_leftovers(parent: &Path) -> usize {
    let Ok(entries) = fs::read_dir(parent) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        removed += usize::from(fs::remove_dir_all(&path).is_ok());
    }
    removed
}

impl Workspace {
    /// Unmounts and removes the workspace on a thread of its own, off the caller's path.
    /// [`crate::wait_for_teardowns`] waits for it, so a process that exits soon after (the CLI) can still finish it.
    pub fn dispose_in_background(self) {
        crate::client::teardown_started();
        let spawned = std::thread::Builder::new()
            .name("runbox-workspace-cleanup".into())
            .spawn(move || {
                drop(self);
                crate::client::teardown_finished();
            });
        if spawned.is_err() {
            crate::client::teardown_finished();
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if self.mounted {
            let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Sweeps what a dead predecessor left under these workspace directories (`runs/`, `sessions/`): first every
/// process of its sandboxes, found through the cgroups named after the workspaces (a sandbox's cgroup is its
/// workspace's name, or that name and `-` and a stage), then the groups, then the workspaces and their mounts.
/// Returns (groups, workspaces) removed. Call it only where no live process owns workspaces under `parents`.
pub fn sweep_leftovers(
    parents: &[PathBuf],
    cgroups: &crate::cgroup::CgroupHost,
    cgroup_parent: &str,
) -> (usize, usize) {
    let names: Vec<String> = parents
        .iter()
        .filter_map(|p| fs::read_dir(p).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let groups = if names.is_empty() || !crate::probe::is_root() {
        0
    } else {
        crate::cgroup::kill_leftovers(cgroups, cgroup_parent, |group| {
            names.iter().any(|n| is_group_of(group, n))
        })
    };
    let workspaces = parents.iter().map(|p| remove_leftovers(p)).sum();
    (groups, workspaces)
}

/// Whether the cgroup named `group` belongs to the workspace named `workspace`: the sandbox's id is the
/// workspace's name, or that name, `-` and a stage (`r…-c`, `r…-r`, `r…-t0`).
fn is_group_of(group: &str, workspace: &str) -> bool {
    group
        .strip_prefix(workspace)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::is_group_of;

    #[test]
    fn a_cgroup_belongs_to_the_workspace_it_is_named_after() {
        assert!(is_group_of("wab12", "wab12"));
        assert!(is_group_of("r7-18ec-0-c", "r7-18ec-0"));
        assert!(is_group_of("r7-18ec-0-r", "r7-18ec-0"));
        // Another run whose id merely starts with the same characters is not this one's.
        assert!(!is_group_of("r7-18ec-01-r", "r7-18ec-0"));
        assert!(!is_group_of("wab123", "wab12"));
        assert!(!is_group_of("wab", "wab12"));
    }
}
