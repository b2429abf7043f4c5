//! Sessions started ahead of time serve creations that ask for defaults; anything else starts a session of its own.
//! Either way the session belongs to its creator alone and keeps its state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use runbox_engine::pools::PoolConfig;
use runbox_engine::sessions::{CreateSession, SessionLimits, Sessions};
use runbox_engine::{Engine, EngineConfig, Jail};

fn sessions(dir: &std::path::Path) -> Arc<Sessions> {
    let engine = Engine::new(EngineConfig {
        languages_dir: None,
        data_dir: dir.to_path_buf(),
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
        warm: [("python".to_string(), 1)].into(),
        ..Default::default()
    };
    let sessions = Arc::new(Sessions::new(Arc::new(engine), limits));
    sessions.start_warm();
    sessions
}

fn wait_warm(s: &Sessions) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.warm_count() == 0 {
        assert!(Instant::now() < deadline, "no warm session appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_default_session_comes_from_the_warm_set_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let s = sessions(dir.path());
    wait_warm(&s);
    let info = s
        .create(
            "alice",
            &CreateSession {
                language: "python".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(s.warm_count(), 0, "the warm session was taken");
    let r = s
        .execute("alice", &info.id, "x = 2\nx * 21", None, &mut |_| {})
        .unwrap();
    assert_eq!(r.result.unwrap()["text/plain"], "42");
    assert!(s.info("bob", &info.id).is_err(), "another owner cannot see it");
    wait_warm(&s); // refilled in the background
    let second = s
        .create(
            "bob",
            &CreateSession {
                language: "python".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_ne!(second.id, info.id);
    let r = s
        .execute("bob", &second.id, "'x' in globals()", None, &mut |_| {})
        .unwrap();
    assert_eq!(r.result.unwrap()["text/plain"], "False", "warm sessions share nothing");
    s.close_all();
}

#[test]
fn a_session_with_its_own_environment_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let s = sessions(dir.path());
    wait_warm(&s);
    let req = CreateSession {
        language: "python".into(),
        env: [("MODE".to_string(), "custom".to_string())].into(),
        ..Default::default()
    };
    let info = s.create("alice", &req).unwrap();
    assert_eq!(s.warm_count(), 1, "the warm session stays for a default request");
    let r = s
        .execute("alice", &info.id, "import os\nos.environ['MODE']", None, &mut |_| {})
        .unwrap();
    assert_eq!(r.result.unwrap()["text/plain"], "'custom'");
    s.close_all();
}
