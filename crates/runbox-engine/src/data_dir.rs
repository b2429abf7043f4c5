//! The data directory holds every tenant's code, input and files (workspaces, sessions, the compile cache, the
//! async store), so no other local user may read it: the directory is created 0700, and the directories runbox
//! keeps in it are made 0700 even when an older version left them open. A data directory that already exists
//! keeps its mode (it may be one the operator shares), since what it holds is closed one level down.
//!
//! Sandboxes do not need to reach it by path: the jail hands each one its workspace as a mount it cloned with
//! its own privileges (see `runbox_sandbox::mounts::detached_clone`).

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The directories runbox keeps in the data directory.
const PRIVATE_DIRS: &[&str] = &["runs", "sessions", "cache"];

/// Where runbox keeps its data unless told otherwise: /var/lib/runbox for root, else the user's data directory
/// (`$XDG_DATA_HOME/runbox`, `~/.local/share/runbox`, or the temporary directory's `runbox`).
pub fn default_dir() -> PathBuf {
    if runbox_sandbox::probe::is_root() {
        return PathBuf::from("/var/lib/runbox");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("runbox")
}

/// Creates `dir` (and missing parents) 0700, and its own subdirectories 0700.
pub fn prepare(dir: &Path) -> io::Result<()> {
    create_private_dir(dir)?;
    for name in PRIVATE_DIRS {
        let sub = dir.join(name);
        create_private_dir(&sub)?;
        // Tightened when it existed already (created by an older runbox, or by hand).
        if fs::metadata(&sub)?.permissions().mode() & 0o7777 != 0o700 {
            fs::set_permissions(&sub, fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Creates `dir` and any missing parent with mode 0700 (an existing one is left as it is).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_data_directory_and_its_subdirectories_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("a/data");
        prepare(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(
            mode(&tmp.path().join("a")),
            0o700,
            "a missing parent is created private too"
        );
        for name in PRIVATE_DIRS {
            assert_eq!(mode(&data.join(name)), 0o700, "{name}");
        }
    }

    #[test]
    fn open_subdirectories_left_by_an_older_version_are_closed() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(tmp.path().join("runs")).unwrap();
        fs::set_permissions(tmp.path().join("runs"), fs::Permissions::from_mode(0o755)).unwrap();
        prepare(tmp.path()).unwrap();
        assert_eq!(mode(&tmp.path().join("runs")), 0o700);
        assert_eq!(mode(tmp.path()), 0o755, "an existing data directory keeps its mode");
    }
}
