//! Files into sessions: uploads written into a session's workspace and charged against its quotas (the kernel
//! charges them to the writer, not to the session), and the workspace the file routes read.

use crate::sync::LockOrRecover;
use std::path::Path;
use std::sync::Arc;

use runbox_sandbox::probe;

use super::session::Session;
use super::{SessionError, Sessions, MIB};

/// Bytes a workspace holds: the tmpfs's used blocks when it is one (as root), else the sizes of its files.
fn workspace_bytes(path: &Path) -> u64 {
    if probe::is_root() {
        if let Ok(st) = nix::sys::statvfs::statvfs(path) {
            return (st.blocks() - st.blocks_free()) * st.fragment_size();
        }
    }
    fn walk(dir: &Path, budget: &mut usize) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        let mut total = 0;
        for entry in entries.flatten() {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            match entry.metadata() {
                Ok(m) if m.is_dir() => total += walk(&entry.path(), budget),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
        total
    }
    walk(path, &mut 100_000)
}

impl Sessions {
    /// Writes an uploaded file into the session's workspace, charging it to the session and its key. Workspaces
    /// live in memory (a tmpfs each) and the server writes uploads, so the kernel charges them to the server, not
    /// to the session's cgroup: the quotas are checked here instead. After the upload, the session's workspace
    /// holds no more than the session's memory limit, the key's sessions no more than `files_per_key_mb`, and all
    /// sessions no more than `files_total_mb` (a file replaced is counted as freed).
    pub fn upload(&self, owner: &str, id: &str, path: &str, content: &[u8]) -> Result<(), SessionError> {
        let session = self.lookup(owner, id)?;
        if let Some(reason) = session.dead_reason() {
            return Err(SessionError::Dead(reason));
        }
        let _one_at_a_time = self.uploads.lock_or_recover();
        let replaced = crate::files::existing_size(session.workspace.path(), path);
        let (mut mine, mut all) = (0u64, 0u64);
        let sessions: Vec<Arc<Session>> = self
            .map
            .lock_or_recover()
            .values()
            .filter(|s| s.dead_reason().is_none())
            .cloned()
            .collect();
        for s in &sessions {
            let used = workspace_bytes(s.workspace.path());
            all += used;
            if s.owner == owner {
                mine += used;
            }
        }
        let this = workspace_bytes(session.workspace.path());
        let grow = (content.len() as u64).saturating_sub(replaced);
        let checks = [
            (
                this,
                session.memory_limit,
                "this session's workspace (its memory limit)",
            ),
            (
                mine,
                self.limits.files_per_key_mb * MIB,
                "this key's session workspaces",
            ),
            (all, self.limits.files_total_mb * MIB, "the server's session workspaces"),
        ];
        for (used, cap, what) in checks {
            if used.saturating_add(grow) > cap {
                return Err(SessionError::QuotaExceeded(format!(
                    "{what} hold {used} bytes; {} more would pass the maximum of {cap}",
                    grow
                )));
            }
        }
        crate::files::write(session.workspace.path(), path, content, session.owner_uid)?;
        Ok(())
    }

    /// The session's workspace directory and the uid owning its files, for the file routes.
    pub fn workspace(&self, owner: &str, id: &str) -> Result<(std::path::PathBuf, Option<u32>), SessionError> {
        let s = self.lookup(owner, id)?;
        if let Some(reason) = s.dead_reason() {
            return Err(SessionError::Dead(reason));
        }
        Ok((s.workspace.path().to_path_buf(), s.owner_uid))
    }
}
