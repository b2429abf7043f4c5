//! Files of a session's workspace, as the API reads and writes them. Every path is checked by
//! [`confined`](crate::paths::confined) and then walked one component at a time with `openat` and `O_NOFOLLOW`, so
//! a symlink the sandboxed program planted (say `/workspace/x -> /etc/shadow`) is refused, never followed by the
//! server, which runs with more privileges than the program.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{fcntl, openat, AtFlags, FcntlArg, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, Mode, SFlag};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::paths::{confined, ARTEFACT_DIR_NAME};

#[derive(Debug, Error)]
pub enum FileError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("file operation failed: {0}")]
    Io(String),
}

impl From<crate::EngineError> for FileError {
    fn from(e: crate::EngineError) -> Self {
        FileError::Invalid(e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: i64,
    pub is_dir: bool,
}

fn errno<'a>(what: &str, path: &'a Path) -> impl FnOnce(Errno) -> FileError + 'a {
    let what = what.to_string();
    move |e| match e {
        Errno::ENOENT => FileError::NotFound(path.display().to_string()),
        Errno::ELOOP | Errno::EMLINK => FileError::Invalid(format!("{}: symlinks are not followed", path.display())),
        Errno::ENOTDIR => FileError::Invalid(format!(
            "{}: a parent is not a directory (or is a symlink)",
            path.display()
        )),
        Errno::EISDIR => FileError::Conflict(format!("{} is a directory", path.display())),
        Errno::ENXIO => FileError::Invalid(format!("{} is not a regular file", path.display())),
        Errno::ENOSPC | Errno::EDQUOT => FileError::Conflict("the workspace is full".into()),
        Errno::ENAMETOOLONG => FileError::Invalid(format!("{}: a name in the path is too long", path.display())),
        other => FileError::Io(format!("{what} {}: {}", path.display(), other.desc())),
    }
}

const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_RDONLY);

fn open_root(root: &Path) -> Result<OwnedFd, FileError> {
    nix::fcntl::open(root, DIR_FLAGS, Mode::empty()).map_err(errno("open", root))
}

/// Opens the directory holding `rel`'s last component, creating missing directories when `create` is set.
fn open_parent(root: &Path, rel: &Path, create: Option<Option<u32>>) -> Result<OwnedFd, FileError> {
    let mut dir = open_root(root)?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    for comp in parent.components() {
        let Component::Normal(name) = comp else { continue };
        let next = match openat(&dir, name, DIR_FLAGS, Mode::empty()) {
            Err(Errno::ENOENT) if create.is_some() => {
                mkdirat(&dir, name, Mode::from_bits_truncate(0o755)).map_err(errno("create", rel))?;
                let fd = openat(&dir, name, DIR_FLAGS, Mode::empty()).map_err(errno("open", rel))?;
                if let Some(Some(uid)) = create {
                    let id = (
                        Some(nix::unistd::Uid::from_raw(uid)),
                        Some(nix::unistd::Gid::from_raw(uid)),
                    );
                    nix::unistd::fchown(&fd, id.0, id.1).map_err(errno("chown", rel))?;
                }
                fd
            }
            other => other.map_err(errno("open", rel))?,
        };
        dir = next;
    }
    Ok(dir)
}

fn file_name(rel: &Path) -> Result<&std::ffi::OsStr, FileError> {
    rel.file_name()
        .ok_or_else(|| FileError::Invalid("the path names no file".into()))
}

/// The file's status if it is a regular file; a directory or anything else (FIFO, socket, device) is refused.
fn regular_file(fd: &OwnedFd, rel: &Path) -> Result<nix::sys::stat::FileStat, FileError> {
    let st = fstat(fd.as_fd()).map_err(errno("stat", rel))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFDIR {
        return Err(FileError::Conflict(format!(
            "{} is a directory: list it with ?path=",
            rel.display()
        )));
    }
    if kind != SFlag::S_IFREG {
        return Err(FileError::Invalid(format!("{} is not a regular file", rel.display())));
    }
    Ok(st)
}

/// Writes (creating or replacing) a file; parents are created. Files belong to `owner` (the sandbox user).
pub fn write(root: &Path, raw: &str, content: &[u8], owner: Option<u32>) -> Result<(), FileError> {
    let rel = confined("path", raw)?;
    let dir = open_parent(root, &rel, Some(owner))?;
    // O_NONBLOCK: a FIFO the program planted must not hang the server in open(); only regular files are written,
    // and they are truncated once that is known.
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let name = file_name(&rel)?;
    let fd = openat(&dir, name, flags, Mode::from_bits_truncate(0o644)).map_err(errno("create", &rel))?;
    regular_file(&fd, &rel)?;
    nix::unistd::ftruncate(&fd, 0).map_err(errno("truncate", &rel))?;
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_WRONLY)).map_err(errno("open", &rel))?;
    if let Some(uid) = owner {
        nix::unistd::fchown(
            &fd,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(uid)),
        )
        .map_err(errno("chown", &rel))?;
    }
    let mut file = File::from(fd);
    file.write_all(content).map_err(|e| {
        drop(file);
        // A partial file would keep the space that ran out (and look like a whole one).
        let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => FileError::Conflict("the workspace is full".into()),
            _ => FileError::Io(e.to_string()),
        }
    })
}

/// Size of the regular file at `raw` if there is one (0 otherwise), found without following symlinks.
pub fn existing_size(root: &Path, raw: &str) -> u64 {
    let size = || -> Result<u64, FileError> {
        let rel = confined("path", raw)?;
        let dir = open_parent(root, &rel, None)?;
        let st = fstatat(&dir, file_name(&rel)?, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno("stat", &rel))?;
        let regular = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
        Ok(if regular { st.st_size as u64 } else { 0 })
    };
    size().unwrap_or(0)
}

/// Reads a file of at most `max_bytes`.
pub fn read(root: &Path, raw: &str, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let rel = confined("path", raw)?;
    let dir = open_parent(root, &rel, None)?;
    let fd = openat(
        &dir,
        file_name(&rel)?,
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(errno("open", &rel))?;
    let st = regular_file(&fd, &rel)?;
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_RDONLY)).map_err(errno("open", &rel))?;
    if st.st_size as u64 > max_bytes {
        return Err(FileError::Conflict(format!(
            "{} is larger than {max_bytes} bytes",
            rel.display()
        )));
    }
    let mut content = Vec::with_capacity(st.st_size as usize);
    File::from(fd)
        .take(max_bytes + 1)
        .read_to_end(&mut content)
        .map_err(|e| FileError::Io(e.to_string()))?;
    Ok(content)
}

/// Lists a directory (`""` for the workspace itself), sorted by name; the engine's own `.runbox` is hidden.
pub fn list(root: &Path, raw: &str) -> Result<Vec<FileEntry>, FileError> {
    let dir = if raw.trim_matches('/').is_empty() || raw == "." {
        open_root(root)?
    } else {
        let rel = confined("path", raw)?;
        let parent = open_parent(root, &rel, None)?;
        openat(&parent, file_name(&rel)?, DIR_FLAGS, Mode::empty()).map_err(errno("open", &rel))?
    };
    let raw_fd = dir.as_raw_fd();
    let mut entries = Vec::new();
    let mut listing = nix::dir::Dir::from_fd(dir).map_err(|e| FileError::Io(e.to_string()))?;
    for entry in listing.iter().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." || (raw.trim_matches('/').is_empty() && name == ARTEFACT_DIR_NAME) {
            continue;
        }
        // SAFETY: raw_fd is the directory `listing` owns and keeps open for this loop.
        let dirfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw_fd) };
        let Ok(st) = fstatat(dirfd, entry.file_name(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        entries.push(FileEntry {
            name,
            size: st.st_size as u64,
            modified: st.st_mtime,
            is_dir,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Deletes a file, or a directory with everything in it.
pub fn delete(root: &Path, raw: &str) -> Result<(), FileError> {
    let rel = confined("path", raw)?;
    let dir = open_parent(root, &rel, None)?;
    let name = file_name(&rel)?;
    let st = fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno("stat", &rel))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        // Through the parent's descriptor, so no symlink above it can redirect the removal; remove_dir_all itself
        // never follows symlinks inside the tree.
        let path = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string()).join(name);
        std::fs::remove_dir_all(&path).map_err(|e| FileError::Io(e.to_string()))
    } else {
        nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir).map_err(errno("delete", &rel))
    }
}

/// A content type for a file name, from its extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "log" | "md" | "py" | "js" | "ts" | "sh" | "c" | "h" | "cpp" | "rs" | "go" | "java" | "rb" | "r"
        | "sql" | "toml" | "yaml" | "yml" | "ini" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a/b/c.bin", &[0, 1, 2, 255], None).unwrap();
        assert_eq!(read(dir.path(), "a/b/c.bin", 100).unwrap(), vec![0, 1, 2, 255]);
        let entries = list(dir.path(), "a").unwrap();
        assert_eq!(entries.len(), 1);
        assert!(entries[0].is_dir);
        delete(dir.path(), "a").unwrap();
        assert!(matches!(
            read(dir.path(), "a/b/c.bin", 100),
            Err(FileError::NotFound(_))
        ));
    }

    #[test]
    fn symlinks_pointing_out_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("dirlink")).unwrap();
        assert!(matches!(read(dir.path(), "link", 100), Err(FileError::Invalid(_))));
        assert!(matches!(
            read(dir.path(), "dirlink/secret", 100),
            Err(FileError::Invalid(_))
        ));
        assert!(matches!(
            write(dir.path(), "dirlink/new", b"x", None),
            Err(FileError::Invalid(_))
        ));
        assert!(matches!(
            write(dir.path(), "link", b"x", None),
            Err(FileError::Invalid(_))
        ));
        assert_eq!(std::fs::read_to_string(outside.path().join("secret")).unwrap(), "s");
        assert!(!outside.path().join("new").exists());
    }

    #[test]
    fn fifos_are_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&dir.path().join("pipe"), Mode::from_bits_truncate(0o644)).unwrap();
        assert!(matches!(read(dir.path(), "pipe", 100), Err(FileError::Invalid(_))));
        assert!(matches!(
            write(dir.path(), "pipe", b"x", None),
            Err(FileError::Invalid(_)) | Err(FileError::Io(_))
        ));
    }

    #[test]
    fn a_name_too_long_for_the_filesystem_is_refused_not_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(300);
        assert!(matches!(
            write(dir.path(), &long, b"x", None),
            Err(FileError::Invalid(_))
        ));
        assert!(matches!(delete(dir.path(), &long), Err(FileError::Invalid(_))));
        assert!(matches!(read(dir.path(), &long, 100), Err(FileError::Invalid(_))));
    }

    #[test]
    fn escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["../x", "/etc/passwd", "a/../../x", ".runbox/python_worker.py"] {
            assert!(matches!(read(dir.path(), p, 100), Err(FileError::Invalid(_))), "{p}");
        }
    }
}
