//! `collect`: after a stateless run, the files the program produced that match the request's glob patterns are
//! returned (base64), within a size budget. The workspace is walked without following symlinks.

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Most bytes of collected files per execution, and per file.
pub const MAX_TOTAL_BYTES: u64 = 16 << 20;
pub const MAX_FILE_BYTES: u64 = 8 << 20;
const MAX_FILES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectedFile {
    /// Path relative to the workspace.
    pub path: String,
    pub size: u64,
    /// The content, base64 (absent when the file was skipped for size).
    pub content_base64: Option<String>,
    /// Why the content is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Whether `path` (relative, `/`-separated) matches `pattern`: `*` and `?` within one segment, `**` across any
/// number of segments.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn segments(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => segments(&p[1..], s) || (!s.is_empty() && segments(p, &s[1..])),
            (Some(pat), Some(seg)) => segment(pat.as_bytes(), seg.as_bytes()) && segments(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn segment(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => segment(&p[1..], s) || (!s.is_empty() && segment(p, &s[1..])),
            (Some(b'?'), Some(_)) => segment(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => segment(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern
        .trim_start_matches("./")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let s: Vec<&str> = path.split('/').collect();
    segments(&p, &s)
}

/// Regular files under `root` matching any pattern, skipping the `.runbox` directory and `unchanged` inputs.
pub fn collect(root: &Path, patterns: &[String], unchanged: &dyn Fn(&str, &[u8]) -> bool) -> Vec<CollectedFile> {
    let mut found = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                if rel != crate::paths::ARTEFACT_DIR_NAME {
                    stack.push(rel);
                }
            } else if meta.is_file() && patterns.iter().any(|p| glob_match(p, &rel)) && found.len() < MAX_FILES {
                found.push((rel, meta.len(), entry.path()));
            }
        }
    }
    found.sort();
    let mut budget = MAX_TOTAL_BYTES;
    let mut out = Vec::new();
    for (rel, size, path) in found {
        let skip = |why: &str| CollectedFile {
            path: rel.clone(),
            size,
            content_base64: None,
            skipped: Some(why.into()),
        };
        if size > MAX_FILE_BYTES || size > budget {
            out.push(skip("larger than the collect size budget"));
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        if unchanged(&rel, &bytes) {
            continue;
        }
        budget -= bytes.len() as u64;
        out.push(CollectedFile {
            path: rel,
            size: bytes.len() as u64,
            content_base64: Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
            skipped: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.png", "plot.png"));
        assert!(!glob_match("*.png", "out/plot.png"));
        assert!(glob_match("**/*.png", "out/plot.png"));
        assert!(glob_match("**/*.png", "plot.png"));
        assert!(glob_match("out/*", "out/a.txt"));
        assert!(glob_match("data?.csv", "data1.csv"));
        assert!(!glob_match("data?.csv", "data10.csv"));
        assert!(glob_match("**", "a/b/c"));
    }

    #[test]
    fn collects_new_files_not_symlinks_nor_unchanged_inputs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("out/a.txt"), "A").unwrap();
        std::fs::write(dir.path().join("main.py"), "code").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("out/link.txt")).unwrap();
        let files = collect(dir.path(), &["**".into()], &|p, b| p == "main.py" && b == b"code");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "out/a.txt");
        assert_eq!(files[0].content_base64.as_deref(), Some("QQ=="));
    }
}
