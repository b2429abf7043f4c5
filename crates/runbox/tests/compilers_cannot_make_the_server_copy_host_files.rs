//! A compile stage runs the user's code too (here through `LD_PRELOAD`), and it may leave a symlink where the
//! engine expects its artefacts directory. The server, which copies artefacts into the compile cache and into warm
//! sandboxes with more privileges than the compiler, must never follow it to the host's files.

use base64::Engine as _;
use runbox_engine::pools::PoolConfig;
use runbox_engine::{CancelToken, Encoding, Engine, EngineConfig, ExecuteRequest, Jail, SourceFile};

/// Replaces the artefacts directory by a symlink to `$TARGET` (a host path, dangling inside the sandbox).
const EVIL: &str = r#"
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void swap_artefacts_for_a_host_path(void) {
    rmdir("/workspace/.runbox");
    symlink(getenv("TARGET"), "/workspace/.runbox");
    _exit(0); /* the "compiler" succeeds without compiling */
}
"#;

fn build_evil_library(dir: &std::path::Path) -> Vec<u8> {
    let src = dir.join("evil.c");
    std::fs::write(&src, EVIL).unwrap();
    let out = dir.join("evil.so");
    let status = std::process::Command::new("/usr/bin/gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc is installed");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

fn walk_names(dir: &std::path::Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        found.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk_names(&e.path(), found);
        }
    }
}

#[test]
fn a_symlink_left_by_the_compiler_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let library = build_evil_library(dir.path());
    // A host directory the attacker would love to read, holding an executable named like the artefact the run
    // stage starts: if the server copied it into the sandbox, the run would print the secret.
    let host = dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("secret.txt"), "TOPSECRET\n").unwrap();
    std::fs::write(host.join("main"), "#!/bin/sh\ncat /workspace/.runbox/secret.txt\n").unwrap();
    for p in [dir.path(), host.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(host.join("main"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let engine = Engine::new(EngineConfig {
        languages_dir: None,
        data_dir: data.clone(),
        policy: Default::default(),
        caps: Default::default(),
        jail: Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]),
        compile_cache_bytes: 64 << 20,
        pools: PoolConfig {
            min: [("c".into(), 1)].into(),
            ..Default::default()
        },
    })
    .unwrap();
    engine.start_pools();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while engine.pool_stats().iter().all(|p| p.ready == 0) {
        assert!(std::time::Instant::now() < deadline, "the C pool never filled");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let req = ExecuteRequest {
        language: "c".into(),
        code: Some("int main(void) { return 0; }".into()),
        files: vec![SourceFile {
            path: "evil.so".into(),
            content: base64::engine::general_purpose::STANDARD.encode(&library),
            encoding: Encoding::Base64,
        }],
        env: [
            ("LD_PRELOAD".to_string(), "/workspace/evil.so".to_string()),
            ("TARGET".to_string(), host.display().to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let result = engine.execute(&req, None, &CancelToken::new(), &mut |_| {});
    if let Ok(r) = &result {
        assert!(
            !r.stdout.contains("TOPSECRET"),
            "the host's file reached the sandbox: {r:#?}"
        );
        assert_ne!(
            r.status,
            runbox_engine::ExecutionStatus::Ok,
            "nothing was compiled, so nothing can run: {r:#?}"
        );
    }
    // Nothing of the host's root reached the cache or any workspace the server wrote.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut names = Vec::new();
    walk_names(&data, &mut names);
    assert!(
        !names.iter().any(|n| n == "secret.txt"),
        "the host's file was copied under the data directory"
    );
}
