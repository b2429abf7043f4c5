//! Gives the crate a build identity: a hash of its sources. Binaries that embed the jail (`runbox` and the small
//! `runbox-jail`) compare theirs before one starts the other, so a stale jail binary left from an older build is
//! never used with a newer spec format.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec![root.join("Cargo.toml"), root.join("build.rs")];
    files(&root.join("src"), &mut paths);
    paths.sort();
    // FNV-1a over every file's relative path and contents: stable, dependency-free, enough to tell builds apart.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for path in &paths {
        let name = path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned();
        let content = std::fs::read(path).unwrap_or_default();
        for byte in name.bytes().chain([0]).chain(content) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=RUNBOX_SANDBOX_BUILD_ID={hash:016x}");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=build.rs");
}
