//! A content-addressed cache of compile artefacts, so that a judge sending the same program with different inputs
//! compiles it once. The key covers the language, its toolchain version, the compile command, the environment and
//! every source file (path and bytes): two different sources never share an entry. It also covers the tenant (API
//! key), so one tenant never learns that another compiled the same source. Artefacts are produced inside the
//! sandbox like any compile; the cache only copies the `.runbox` directory of a successful compile. Size is
//! bounded; the least recently used entries go first.

use crate::sync::LockOrRecover;
use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

pub struct CompileCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Serialises evictions; lookups and inserts are atomic renames and need no lock.
    evicting: Mutex<()>,
}

/// Everything a compile's output depends on, and whose it is. Entries are per tenant (API key): a hit says "this
/// exact source was compiled before" (by `compile_cached`, and by its speed, which no flag can hide), so a tenant
/// may only ever hit its own entries; another tenant's identical source compiles again.
pub struct CacheKey<'a> {
    pub tenant: &'a str,
    pub language: &'a str,
    pub version: &'a str,
    pub argv: &'a [String],
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub files: &'a [(PathBuf, Vec<u8>)],
}

impl CacheKey<'_> {
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(b"runbox-compile-cache-v2");
        field(self.tenant.as_bytes());
        field(self.language.as_bytes());
        field(self.version.as_bytes());
        for a in self.argv {
            field(a.as_bytes());
        }
        for (k, v) in self.env {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        let mut files: Vec<_> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, content) in files {
            field(path.to_string_lossy().as_bytes());
            field(content);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn dir_size(path: &Path) -> u64 {
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return 0;
    }
    let Ok(entries) = fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Copies a directory tree, giving files to `owner` when set. Symlinks are neither followed nor copied, and the
/// top directory itself must not be one: the tree may have been written by a sandboxed compiler, and the server
/// that copies it runs with more privileges than that compiler (a `.runbox -> /` planted by the program must not
/// make the server copy the host's files).
pub(crate) fn copy_tree(from: &Path, to: &Path, owner: Option<u32>) -> std::io::Result<()> {
    if !fs::symlink_metadata(from)?.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a directory (or a symlink)",
        ));
    }
    fs::create_dir_all(to)?;
    if let Some(uid) = owner {
        chown(to, Some(uid), Some(uid))?;
    }
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let meta = fs::symlink_metadata(entry.path())?;
        let dest = to.join(entry.file_name());
        if meta.is_dir() {
            copy_tree(&entry.path(), &dest, owner)?;
        } else if meta.is_file() {
            fs::copy(entry.path(), &dest)?;
            if let Some(uid) = owner {
                chown(&dest, Some(uid), Some(uid))?;
            }
        }
    }
    Ok(())
}

impl CompileCache {
    pub fn new(dir: PathBuf, max_bytes: u64) -> CompileCache {
        CompileCache {
            dir,
            max_bytes,
            evicting: Mutex::new(()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    /// Whether `key` has an entry now (it may still be evicted before it is restored).
    pub fn contains(&self, key: &str) -> bool {
        self.dir.join(key).join("outcome.json").is_file()
    }

    /// Copies the artefacts of `key` into `artefacts` (the run's `.runbox`) if cached, and returns the compile
    /// stage's recorded outcome.
    pub fn restore(&self, key: &str, artefacts: &Path, owner: Option<u32>) -> Option<runbox_sandbox::Outcome> {
        let entry = self.dir.join(key);
        let outcome: runbox_sandbox::Outcome =
            serde_json::from_slice(&fs::read(entry.join("outcome.json")).ok()?).ok()?;
        copy_tree(&entry.join("artefacts"), artefacts, owner).ok()?;
        // Touching the entry marks it recently used.
        let _ = fs::write(entry.join("used"), b"");
        Some(outcome)
    }

    /// Stores the artefacts of a successful compile.
    pub fn store(&self, key: &str, artefacts: &Path, outcome: &runbox_sandbox::Outcome) {
        if dir_size(artefacts) > self.max_bytes / 4 {
            return; // one entry may not crowd out the cache
        }
        let staging = self.dir.join(format!(".tmp-{key}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        let ok = copy_tree(artefacts, &staging.join("artefacts"), None).is_ok()
            && fs::write(
                staging.join("outcome.json"),
                serde_json::to_vec(outcome).unwrap_or_default(),
            )
            .is_ok()
            && fs::write(staging.join("used"), b"").is_ok();
        if !ok || fs::rename(&staging, self.dir.join(key)).is_err() {
            let _ = fs::remove_dir_all(&staging);
            return;
        }
        self.evict();
    }

    /// Removes least recently used entries until the cache fits its budget.
    fn evict(&self) {
        let _guard = self.evicting.lock_or_recover();
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        let mut all: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| {
                let used = fs::metadata(e.path().join("used"))
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (used, dir_size(&e.path()), e.path())
            })
            .collect();
        let mut total: u64 = all.iter().map(|(_, s, _)| s).sum();
        all.sort();
        for (_, size, path) in all {
            if total <= self.max_bytes {
                break;
            }
            let _ = fs::remove_dir_all(&path);
            total = total.saturating_sub(size);
        }
    }

    /// Creates the cache directory.
    pub fn prepare(&self) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn key(files: &[(PathBuf, Vec<u8>)]) -> String {
        key_of("a", files)
    }

    fn key_of(tenant: &str, files: &[(PathBuf, Vec<u8>)]) -> String {
        let env = BTreeMap::new();
        CacheKey {
            tenant,
            language: "c",
            version: "12",
            argv: &["gcc".into()],
            env: &env,
            files,
        }
        .digest()
    }

    #[test]
    fn different_sources_never_share_a_key() {
        let a = key(&[(PathBuf::from("main.c"), b"int main(){}".to_vec())]);
        let b = key(&[(PathBuf::from("main.c"), b"int main(){ }".to_vec())]);
        let c = key(&[(PathBuf::from("other.c"), b"int main(){}".to_vec())]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, key(&[(PathBuf::from("main.c"), b"int main(){}".to_vec())]));
    }

    #[test]
    fn the_same_source_of_two_tenants_never_shares_a_key() {
        let files = [(PathBuf::from("main.c"), b"int main(){}".to_vec())];
        assert_ne!(key_of("a", &files), key_of("b", &files));
        // Lengths are framed: moving bytes between the tenant and the next field changes the key.
        assert_ne!(key_of("ab", &files), key_of("a", &files));
    }

    #[test]
    fn a_tree_that_is_a_symlink_or_holds_symlinks_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "s").unwrap();
        let tree = dir.path().join("tree");
        std::os::unix::fs::symlink(&outside, &tree).unwrap();
        assert!(copy_tree(&tree, &dir.path().join("copy1"), None).is_err());
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("main"), "bin").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), real.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, real.join("dirlink")).unwrap();
        copy_tree(&real, &dir.path().join("copy2"), None).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path().join("copy2"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["main"]);
    }

    #[test]
    fn store_restore_and_evict() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path().join("cache"), 1 << 20);
        cache.prepare().unwrap();
        let art = dir.path().join("art");
        fs::create_dir_all(&art).unwrap();
        fs::write(art.join("main"), vec![7u8; 100_000]).unwrap();
        let outcome: runbox_sandbox::Outcome = serde_json::from_value(serde_json::json!({
            "status": "ok", "exit_code": 0, "signal": null, "stdout": "", "stderr": "", "stdout_truncated": false,
            "stderr_truncated": false, "wall_ms": 5, "cpu_ms": 4, "memory_peak_bytes": 1
        }))
        .unwrap();
        for i in 0..20 {
            cache.store(&format!("k{i:02}"), &art, &outcome);
        }
        // 20 entries of 100 kB do not fit in 1 MiB: the oldest went.
        assert!(dir_size(&dir.path().join("cache")) <= 1 << 20);
        let out = dir.path().join("restored");
        assert!(cache.restore("k19", &out, None).is_some());
        assert_eq!(fs::read(out.join("main")).unwrap().len(), 100_000);
        assert!(cache.restore("missing", &out, None).is_none());
    }
}
