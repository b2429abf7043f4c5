//! A data directory under a private (0700) parent, as `mktemp -d`, a home directory or a systemd
//! `StateDirectory=` give: code runs on every path (one-shot, warm pool with and without a zygote, compile stage,
//! session, file API, async), `/health/ready` says ready, and what runbox keeps there is closed to other local
//! users (0700 directories, 0600 database files). When sandboxes cannot be built, `/health/ready` answers 503
//! with the reason while `/health` stays 200.

use crate::live_server;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use live_server::*;
use runbox_engine::{CancelToken, ExecuteRequest, ExecutionStatus};
use serde_json::{json, Value};

/// `<tmp>/private/data`, with `private` 0700: the sandbox's ids cannot pass through it.
fn data_dir_under_a_private_parent(tmp: &Path) -> PathBuf {
    let private = tmp.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    private.join("data")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn pool<'a>(health: &'a Value, lang: &str) -> &'a Value {
    health["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["language"] == lang)
        .unwrap_or_else(|| panic!("no {lang} pool: {health}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_dir_under_a_private_parent_runs_code_on_every_path_and_is_private() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir_under_a_private_parent(tmp.path());
    let server = Server::start(&data, &[]);

    // Ready: the start-up trial sandbox ran, and the python pool fills from its zygote.
    let ready = server.get("/health/ready").await.expect(200);
    assert_eq!(
        (&ready["status"], &ready["trial_ok"]),
        (&json!("ready"), &json!(true)),
        "{ready}"
    );
    within(30, "a zygote-built python sandbox", async {
        loop {
            let health = server.get("/health").await.expect(200);
            let python = pool(&health, "python");
            if python["zygote"] == "running" && python["ready"].as_u64() > Some(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // Warm (zygote), one-shot (perl has no pool) and compiled runs.
    let before = pool(&server.get("/health").await.expect(200), "python")["hits"].as_u64();
    for (lang, code, out) in [
        ("python", "print(6*7)", "42\n"),
        ("perl", "print 6*7, qq(\\n)", "42\n"),
        ("c", "#include <stdio.h>\nint main(void){puts(\"42\");}", "42\n"),
    ] {
        let r = server
            .post("/execute", json!({"language": lang, "code": code}))
            .await
            .expect(200);
        assert_eq!((&r["status"], &r["stdout"]), (&json!("ok"), &json!(out)), "{lang}: {r}");
    }
    let after = pool(&server.get("/health").await.expect(200), "python")["hits"].as_u64();
    assert!(after > before, "python was not served warm ({before:?} -> {after:?})");

    // A session, and its files both ways.
    let session = server
        .post("/sessions", json!({"language": "python"}))
        .await
        .expect(201);
    let id = session["id"].as_str().unwrap().to_string();
    let cell = server
        .post(
            &format!("/sessions/{id}/execute"),
            json!({"code": "open('made.txt', 'w').write('from the cell')\n6*7"}),
        )
        .await
        .expect(200);
    assert_eq!(cell["result"]["text/plain"], "42", "{cell}");
    let put = server
        .client()
        .put(format!("{}/sessions/{id}/files/given.txt", server.base))
        .body("from the host")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    let cell = server
        .post(
            &format!("/sessions/{id}/execute"),
            json!({"code": "print(open('given.txt').read())"}),
        )
        .await
        .expect(200);
    assert_eq!(cell["stdout"], "from the host\n", "{cell}");
    let made = server
        .client()
        .get(format!("{}/sessions/{id}/files/made.txt", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    assert_eq!(made.text().await.unwrap(), "from the cell");

    // An async execution (it lands in the SQLite store).
    let created = server
        .post("/executions", json!({"language": "bash", "code": "echo async"}))
        .await
        .expect(202);
    let location = format!("/executions/{}", created["id"].as_str().unwrap());
    let done = server.poll_job(&location, None, 30, |v| v["status"] == "done").await;
    assert_eq!(done["result"]["stdout"], "async\n", "{done}");

    // Nothing there is open to other local users.
    assert_eq!(mode(&data), 0o700, "the data directory");
    for dir in ["runs", "sessions", "cache"] {
        assert_eq!(mode(&data.join(dir)), 0o700, "{dir}");
    }
    for file in ["runbox.sqlite3", "runbox.sqlite3-wal", "runbox.sqlite3-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(server.get("/health/ready").await.expect(200)["status"], "ready");
}

#[test]
fn warm_sandboxes_built_without_a_zygote_use_a_data_dir_under_a_private_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir_under_a_private_parent(tmp.path());
    let engine = runbox_engine::Engine::new(runbox_engine::EngineConfig {
        languages_dir: None,
        data_dir: data,
        policy: Default::default(),
        caps: Default::default(),
        jail: runbox_engine::Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]),
        compile_cache_bytes: 0,
        pools: runbox_engine::pools::PoolConfig {
            min: [("bash".to_string(), 1)].into_iter().collect(),
            zygote: false,
            ..Default::default()
        },
    })
    .unwrap();
    engine.start_pools();
    let deadline = Instant::now() + Duration::from_secs(30);
    let bash = || engine.pool_stats().into_iter().find(|p| p.language == "bash").unwrap();
    while bash().ready == 0 {
        assert!(!bash().failing, "the pool fails: {:?}", bash());
        assert!(Instant::now() < deadline, "the bash pool never filled: {:?}", bash());
        std::thread::sleep(Duration::from_millis(20));
    }
    let req = ExecuteRequest {
        language: "bash".into(),
        code: Some("echo warm".into()),
        ..Default::default()
    };
    let result = engine.execute(&req, None, &CancelToken::new(), &mut |_| {}).unwrap();
    assert_eq!(result.status, ExecutionStatus::Ok, "{result:#?}");
    assert_eq!(bash().hits, 1, "not served warm: {result:#?}");
    assert_eq!(bash().zygote, None, "built without a zygote");
}

/// A read-only tmpfs over `runs/` until dropped: no workspace can be created there.
struct ReadOnlyRuns(PathBuf);

impl ReadOnlyRuns {
    fn mount(data: &Path) -> ReadOnlyRuns {
        let runs = data.join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,mode=0700", "tmpfs"])
            .arg(&runs)
            .status()
            .unwrap();
        assert!(status.success(), "mount a read-only tmpfs on {}", runs.display());
        ReadOnlyRuns(runs)
    }
}

impl Drop for ReadOnlyRuns {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_answers_503_with_the_reason_when_sandboxes_cannot_be_built_while_liveness_stays_200() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir_under_a_private_parent(tmp.path());
    let _ro = ReadOnlyRuns::mount(&data);
    let mut server = Server::start(&data, &[]);

    let ready = server.get("/health/ready").await.expect(503);
    assert_eq!(
        (&ready["status"], &ready["trial_ok"]),
        (&json!("degraded"), &json!(false)),
        "{ready}"
    );
    let reason = ready["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("trial sandbox failed") && reason.contains("Read-only file system"),
        "{ready}"
    );
    let health = server.get("/health").await.expect(200);
    assert_eq!(
        (&health["status"], &health["reason"]),
        (&json!("degraded"), &ready["reason"]),
        "{health}"
    );

    // Every pool fails to build, and says so.
    within(30, "every pool failing", async {
        loop {
            let health = server.get("/health").await.expect(200);
            if health["pools"].as_array().unwrap().iter().all(|p| p["failing"] == true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(server.terminate().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_turns_503_when_every_warm_pool_fails_to_build_sandboxes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir_under_a_private_parent(tmp.path());
    let mut server = Server::start(&data, &["pools.min={python = 1}", "pools.zygote=false"]);
    within(30, "a warm python sandbox", async {
        while pool(&server.get("/health").await.expect(200), "python")["ready"] != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(server.get("/health/ready").await.expect(200)["status"], "ready");

    // From now on no workspace can be made: the warm sandbox is used, and its replacement cannot be built.
    let ro = ReadOnlyRuns::mount(&data);
    // (The run itself fails too, as a 500: its code cannot be written into the workspace.)
    let _ = server
        .client()
        .post(format!("{}/execute", server.base))
        .json(&json!({"language": "python", "code": "print(1)"}))
        .send()
        .await
        .unwrap();
    let ready = within(30, "readiness to turn degraded", async {
        loop {
            let r = server.get("/health/ready").await;
            if r.status == 503 {
                break r.json();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["trial_ok"], true, "the start-up trial passed: {ready}");
    assert_eq!(
        ready["reason"], "every warm pool fails to build sandboxes (python)",
        "{ready}"
    );
    assert_eq!(server.get("/health").await.expect(200)["status"], "degraded");
    drop(ro);
    assert_eq!(server.terminate().await.code(), Some(0));
}
