//! Paths a client names inside the workspace. Every one is checked here before it touches the disk: relative,
//! no `..`, no empty or `.` segments, no NUL, bounded length, and not in the engine's own `.runbox` directory.

use std::path::{Component, Path, PathBuf};

use crate::error::EngineError;

const MAX_PATH_BYTES: usize = 1024;
const MAX_DEPTH: usize = 16;
/// The longest file name Linux file systems take (NAME_MAX); a longer segment would fail at the disk as an I/O
/// error (ENAMETOOLONG), which is the client's mistake, not the server's.
const MAX_SEGMENT_BYTES: usize = 255;
/// Where compile stages put their output (`/workspace/.runbox`), relative to the workspace.
pub const ARTEFACT_DIR_NAME: &str = ".runbox";

/// Validates a client-supplied workspace path and returns it normalised (`a/b.py`).
pub fn confined(field: &str, raw: &str) -> Result<PathBuf, EngineError> {
    let bad = |why: &str| Err(EngineError::invalid(field, format!("{why}: {raw:?}")));
    if raw.is_empty() {
        return bad("path is empty");
    }
    if raw.len() > MAX_PATH_BYTES {
        return bad("path is too long");
    }
    if raw.contains('\0') || raw.contains('\\') {
        return bad("path contains a NUL byte or a backslash");
    }
    let path = Path::new(raw);
    if path.is_absolute() {
        return bad("path must be relative to the workspace");
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(seg) if seg.len() > MAX_SEGMENT_BYTES => {
                return bad("a path segment is longer than 255 bytes")
            }
            Component::Normal(seg) => out.push(seg),
            Component::CurDir => {}
            Component::ParentDir => return bad("path must not contain `..`"),
            Component::RootDir | Component::Prefix(_) => return bad("path must be relative to the workspace"),
        }
    }
    if out.as_os_str().is_empty() {
        return bad("path names no file");
    }
    if out.components().count() > MAX_DEPTH {
        return bad("path is nested too deeply");
    }
    if out.starts_with(ARTEFACT_DIR_NAME) {
        return bad("the .runbox directory is reserved for build artefacts");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths() {
        assert_eq!(confined("f", "main.py").unwrap(), PathBuf::from("main.py"));
        assert_eq!(confined("f", "./src//app.py").unwrap(), PathBuf::from("src/app.py"));
    }

    #[test]
    fn refuses_escapes() {
        for raw in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            ".",
            "./",
            "a\0b",
            "..\\x",
            ".runbox/main",
        ] {
            assert!(confined("files[0].path", raw).is_err(), "{raw:?} accepted");
        }
    }

    #[test]
    fn refuses_a_segment_longer_than_a_file_name_may_be() {
        let long = "x".repeat(256);
        assert!(confined("path", &long).is_err());
        assert!(confined("path", &format!("dir/{long}")).is_err());
        assert!(confined("path", &"x".repeat(255)).is_ok());
    }

    #[test]
    fn error_names_the_field() {
        let e = confined("files[2].path", "../x").unwrap_err();
        assert!(e.to_string().starts_with("files[2].path:"), "{e}");
    }
}
