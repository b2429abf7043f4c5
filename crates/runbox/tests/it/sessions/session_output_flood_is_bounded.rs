//! A session that floods its output between cells (a background thread writing forever) or inside a cell cannot
//! grow the server's memory: unread output beyond a budget is dropped, a cell keeps at most its cap.

use std::sync::Arc;
use std::time::Duration;

use runbox_engine::pools::PoolConfig;
use runbox_engine::sessions::{CreateSession, SessionLimits, Sessions};
use runbox_engine::{Engine, EngineConfig, Jail};

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
    kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
}

#[test]
fn flooding_output_does_not_grow_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig {
        languages_dir: None,
        data_dir: dir.path().to_path_buf(),
        policy: Default::default(),
        caps: Default::default(),
        jail: Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]),
        compile_cache_bytes: 0,
        pools: PoolConfig {
            enabled: false,
            ..Default::default()
        },
    })
    .unwrap();
    let limits = SessionLimits {
        warm: Default::default(),
        ..Default::default()
    };
    let s = Arc::new(Sessions::new(Arc::new(engine), limits));
    let info = s.create("me", &CreateSession::default()).unwrap();
    let before = rss();
    let flood = "import os, threading\n\
                 def flood():\n    while True: os.write(1, b'x' * 65536)\n\
                 threading.Thread(target=flood, daemon=True).start()";
    s.execute("me", &info.id, flood, None, &mut |_| {}).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "the server grew by {} MiB while nobody read the output",
        grown >> 20
    );
    // The next cell still runs; what it gets of the flood is cut at the cell's cap.
    let r = s
        .execute("me", &info.id, "import time; time.sleep(0.5); 1 + 1", None, &mut |_| {})
        .unwrap();
    assert_eq!(r.result.unwrap()["text/plain"], "2");
    assert!(r.stdout.len() <= 1 << 20);
    s.close_all();
}
