//! What a compile stage may do to the server. The request's `env` never reaches the compiler (`LD_PRELOAD` and
//! friends included), and should a compiler run code of the request's anyway (here a language whose compile
//! command preloads a library from the workspace) and leave a symlink where the engine expects its artefacts
//! directory, the server, which copies artefacts into the compile cache and into warm sandboxes with more
//! privileges than the compiler, must never follow it to the host's files.

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

/// Says on stderr that it was loaded, in which program.
const TELLTALE: &str = r#"
#include <stdio.h>
__attribute__((constructor)) static void tell(void) {
    char name[64] = "";
    FILE *f = fopen("/proc/self/comm", "r");
    if (f) { fgets(name, sizeof name, f); fclose(f); }
    fprintf(stderr, "PRELOADED into %s", name);
}
"#;

fn build_evil_library(dir: &std::path::Path) -> Vec<u8> {
    build_library(dir, EVIL)
}

fn build_library(dir: &std::path::Path, source: &str) -> Vec<u8> {
    let src = dir.join("evil.c");
    std::fs::write(&src, source).unwrap();
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
    // A C whose compiler preloads the request's library: the request's own env cannot do that any more.
    let langs = dir.path().join("languages");
    std::fs::create_dir(&langs).unwrap();
    let c = include_str!("../../../../../languages/c.toml").replace(
        "argv = [\"/usr/bin/gcc\", \"-O2\"",
        &format!(
            "argv = [\"/usr/bin/env\", \"LD_PRELOAD=/workspace/evil.so\", \"TARGET={}\", \"/usr/bin/gcc\", \"-O2\"",
            host.display()
        ),
    );
    assert!(
        c.contains("LD_PRELOAD"),
        "the compile command of c.toml changed: update this test"
    );
    std::fs::write(langs.join("c.toml"), c).unwrap();
    let data = dir.path().join("data");
    let engine = Engine::new(EngineConfig {
        languages_dir: Some(langs),
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
        ..Default::default()
    };
    let result = engine.execute(&req, None, &CancelToken::new(), &mut |_| {});
    if let Ok(r) = &result {
        assert!(
            !r.record.stdout.contains("TOPSECRET"),
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

#[test]
fn ld_preload_in_the_request_env_reaches_the_program_but_never_the_compiler() {
    let dir = tempfile::tempdir().unwrap();
    let library = build_library(dir.path(), TELLTALE);
    let engine = Engine::new(EngineConfig {
        languages_dir: None,
        data_dir: dir.path().join("data"),
        policy: Default::default(),
        caps: Default::default(),
        jail: Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]),
        compile_cache_bytes: 0,
        pools: PoolConfig::default(),
    })
    .unwrap();
    let req = ExecuteRequest {
        language: "c".into(),
        code: Some("#include <stdio.h>\nint main(void) { puts(\"ran\"); return 0; }".into()),
        files: vec![SourceFile {
            path: "telltale.so".into(),
            content: base64::engine::general_purpose::STANDARD.encode(&library),
            encoding: Encoding::Base64,
        }],
        env: [
            ("LD_PRELOAD".to_string(), "/workspace/telltale.so".to_string()),
            ("LD_LIBRARY_PATH".to_string(), "/workspace".to_string()),
            ("GCONV_PATH".to_string(), "/workspace".to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let r = engine.execute(&req, None, &CancelToken::new(), &mut |_| {}).unwrap();
    let compile = r.compile.as_ref().expect("C has a compile stage");
    assert!(
        !compile.record.stderr.contains("PRELOADED"),
        "the request's LD_PRELOAD reached the compiler: {compile:#?}"
    );
    assert_eq!(r.status, runbox_engine::ExecutionStatus::Ok, "{r:#?}");
    assert_eq!(r.record.stdout, "ran\n");
    // The program keeps the environment it asked for.
    let run = r.run.as_ref().unwrap();
    assert!(run.record.stderr.contains("PRELOADED into main"), "{run:#?}");
}
