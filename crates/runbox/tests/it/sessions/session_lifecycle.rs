//! A session's life: its fields as it goes idle → busy → dead; interrupts and cell timeouts that keep it alive; a
//! cell that ignores SIGINT getting it killed after the grace period; `exit()`, the memory limit and the CPU
//! bandwidth, idle expiry (by the reaper, and by the real server's background reaper); one cell at a time in
//! arrival order with a bounded queue; and deletion freeing its processes.

use crate::session_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use session_support::*;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Runs `code` in the background and waits until the session says it is busy (and a moment more, so that the
/// worker is inside the cell and not still reading it).
async fn start_cell(api: &Api, id: &str, body: Value) -> tokio::task::JoinHandle<Reply> {
    let call = api.post(&format!("/sessions/{id}/execute"), body);
    let running = tokio::spawn(call.send());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if api.info(id).await["state"] == "busy" {
            break;
        }
        assert!(Instant::now() < deadline, "the session never became busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_info_follows_idle_busy_dead() {
    let api = Api::plain();
    let before = now_ms();
    let (id, mark) = api.create_marked(None, json!({"language": "python"})).await;
    let info = api.info(&id).await;
    assert_eq!(info["id"], id.as_str());
    assert_eq!(info["language"], "python");
    assert_eq!(info["state"], "idle");
    assert!(info["dead_reason"].is_null(), "{info}");
    assert_eq!(info["executions"], 0);
    assert_eq!(info["idle_timeout_s"], 600, "the default idle timeout: {info}");
    let created = info["created_at"].as_u64().unwrap();
    assert!(
        created >= before.saturating_sub(1000) && created <= now_ms() + 1000,
        "{info}"
    );
    assert!(info["last_used_at"].as_u64().unwrap() >= created, "{info}");
    let memory = info["memory_bytes"].as_u64().unwrap();
    assert!(
        memory > 4 << 20 && memory < 1 << 30,
        "an idle Python session's memory: {memory}"
    );
    assert!(!processes_with_mark(&mark).is_empty(), "the worker runs on the host");

    // The session is in the list.
    let list = api.get("/sessions").send().await.expect(200);
    assert!(
        list.as_array().unwrap().iter().any(|s| s["id"] == id.as_str()),
        "{list}"
    );

    tokio::time::sleep(Duration::from_millis(20)).await;
    let running = start_cell(&api, &id, json!({"code": "import time\ntime.sleep(1)"})).await;
    let busy = api.info(&id).await;
    assert_eq!(busy["state"], "busy", "{busy}");
    assert_eq!(busy["executions"], 1, "{busy}");
    assert!(busy["last_used_at"].as_u64().unwrap() > created, "{busy}");
    assert!(busy["memory_bytes"].as_u64().unwrap() > 0);
    running.await.unwrap().expect(200);
    let idle = api.info(&id).await;
    assert_eq!(idle["state"], "idle", "{idle}");
    assert!(idle["last_used_at"].as_u64().unwrap() >= busy["last_used_at"].as_u64().unwrap());

    let r = api.exec(&id, "exit()").await;
    assert_eq!(r["status"], "exit", "{r}");
    assert_eq!(r["exit_code"], 0, "{r}");
    let dead = api.info(&id).await;
    assert_eq!(dead["state"], "dead", "{dead}");
    assert_eq!(dead["memory_bytes"], 0, "{dead}");
    assert_eq!(dead["executions"], 2, "{dead}");
    assert!(dead["dead_reason"].as_str().unwrap().starts_with("exit"), "{dead}");
    wait_processes_gone(&mark, 10).await;

    // Deleting a dead session forgets it.
    api.delete(&format!("/sessions/{id}")).send().await.expect_bytes(204);
    api.get(&format!("/sessions/{id}"))
        .send()
        .await
        .expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_the_cell_and_keeps_the_session() {
    let api = Api::plain();
    let id = api.create("python").await;
    // A node alone (no cluster settings) makes the ids it always made: no node part (see docs/scaling.md).
    assert!(
        id.len() == 37 && id.starts_with("sess_") && id[5..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    api.exec_ok(&id, "kept = 'still here'\ncounter = 0").await;
    let running = start_cell(&api, &id, json!({"code": "while True:\n    counter += 1"})).await;
    let info = api
        .post(&format!("/sessions/{id}/interrupt"), json!({}))
        .send()
        .await
        .expect(200);
    assert_eq!(info["id"], id.as_str(), "{info}");
    let r = within(10, "the interrupted cell", running).await.unwrap().expect(200);
    assert_eq!(r["status"], "interrupted", "{r}");
    assert_eq!(r["error"]["name"], "KeyboardInterrupt", "{r}");
    let r = api.exec_ok(&id, "(kept, counter > 0)").await;
    assert_eq!(r["result"]["text/plain"], "('still here', True)", "{r}");
    assert_eq!(api.info(&id).await["state"], "idle");

    // An interrupt while idle interrupts nothing.
    api.post(&format!("/sessions/{id}/interrupt"), json!({}))
        .send()
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = api.exec_ok(&id, "kept").await;
    assert_eq!(r["result"]["text/plain"], "'still here'", "{r}");

    // JavaScript: a busy loop is interrupted too, and the globals survive.
    let js = api.create("javascript").await;
    api.exec_ok(&js, "let kept = 42;").await;
    let running = start_cell(&api, &js, json!({"code": "while (true) {}"})).await;
    api.post(&format!("/sessions/{js}/interrupt"), json!({}))
        .send()
        .await
        .expect(200);
    let r = within(10, "the interrupted cell", running).await.unwrap().expect(200);
    assert_eq!(r["status"], "interrupted", "{r}");
    let r = api.exec_ok(&js, "kept").await;
    assert_eq!(r["result"]["text/plain"], "42", "{r}");

    // Bash: the running command is interrupted; the shell and its variables stay.
    let sh = api.create("bash").await;
    api.exec_ok(&sh, "KEPT=yes").await;
    let running = start_cell(&api, &sh, json!({"code": "sleep 30"})).await;
    api.post(&format!("/sessions/{sh}/interrupt"), json!({}))
        .send()
        .await
        .expect(200);
    let r = within(10, "the interrupted cell", running).await.unwrap().expect(200);
    assert_eq!(r["status"], "interrupted", "{r}");
    let r = api.exec_ok(&sh, "echo $KEPT").await;
    assert_eq!(r["stdout"], "yes\n", "{r}");

    // Interrupting an unknown session is a 404.
    api.post("/sessions/sess_unknown/interrupt", json!({}))
        .send()
        .await
        .expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_right_as_the_cell_starts_still_interrupts_it() {
    // The interrupt may reach the worker while it is still reading the cell: it must neither be lost (the cell
    // would run on until the grace period kills the session) nor cut the cell short.
    let api = Api::plain();
    for (lang, spin, keep, check) in [
        ("python", "while True:\n    pass", "kept = 1", "kept"),
        ("javascript", "while (true) {}", "let kept = 1;", "kept"),
        ("bash", "sleep 30", "KEPT=1", "echo $KEPT"),
    ] {
        let id = api.create(lang).await;
        api.exec_ok(&id, keep).await;
        for round in 0..5 {
            let started = Instant::now();
            let call = api.post(&format!("/sessions/{id}/execute"), json!({ "code": spin }));
            let running = tokio::spawn(call.send());
            while api.info(&id).await["state"] != "busy" {
                assert!(started.elapsed() < Duration::from_secs(10), "{lang}: never busy");
                tokio::time::sleep(Duration::from_micros(100 * round)).await;
            }
            api.post(&format!("/sessions/{id}/interrupt"), json!({}))
                .send()
                .await
                .expect(200);
            let r = within(10, "the interrupted cell", running).await.unwrap().expect(200);
            assert_eq!(r["status"], "interrupted", "{lang}, round {round}: {r}");
            assert!(
                started.elapsed() < Duration::from_millis(1900),
                "{lang}, round {round}: stopped within the grace period, took {:?}",
                started.elapsed()
            );
        }
        // A stray interrupt while idle changes nothing either.
        api.post(&format!("/sessions/{id}/interrupt"), json!({}))
            .send()
            .await
            .expect(200);
        let r = api.exec_ok(&id, check).await;
        let shown = r["result"]["text/plain"]
            .as_str()
            .or(r["stdout"].as_str())
            .unwrap_or("");
        assert_eq!(shown.trim(), "1", "{lang}: {r}");
        assert_eq!(api.info(&id).await["state"], "idle");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_timeout_interrupts_the_cell_and_keeps_the_session() {
    let api = Api::plain();
    let id = api.create("python").await;
    api.exec_ok(&id, "kept = [1, 2, 3]").await;
    let started = Instant::now();
    let r = api
        .exec_body(
            &id,
            json!({"code": "print('working', flush=True)\nwhile True:\n    pass", "timeout_ms": 800}),
        )
        .await
        .expect(200);
    assert_eq!(r["status"], "timeout", "{r}");
    assert_eq!(r["stdout"], "working\n", "output before the timeout is kept: {r}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(r["duration_ms"].as_u64().unwrap() >= 800, "{r}");
    let r = api.exec_ok(&id, "sum(kept)").await;
    assert_eq!(r["result"]["text/plain"], "6", "{r}");
    let r = api
        .exec_body(&id, json!({"code": "import time\ntime.sleep(30)", "timeout_ms": 500}))
        .await
        .expect(200);
    assert_eq!(r["status"], "timeout", "{r}");
    assert_eq!(api.info(&id).await["state"], "idle");

    // Out-of-range timeouts are refused before anything runs.
    for bad in [0, 10_000_000] {
        let body = api
            .exec_body(&id, json!({"code": "1", "timeout_ms": bad}))
            .await
            .expect(422);
        assert_eq!(body["code"], "invalid_field", "{body}");
        assert_eq!(body["details"]["field"], "timeout_ms", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_that_ignores_sigint_gets_the_session_killed_after_the_grace_period() {
    // The grace period is an operator setting (`--set sessions.interrupt_grace_ms=500`).
    let config =
        runbox_server::ServerConfig::load(None, &|_| None, &[("sessions.interrupt_grace_ms".into(), "500".into())])
            .expect("the setting is accepted");
    assert_eq!(config.sessions.interrupt_grace_ms, 500);
    let api = Api::new(|c| c.sessions = config.sessions.clone());

    let (id, mark) = api.create_marked(None, json!({"language": "python"})).await;
    let started = Instant::now();
    let r = api
        .exec_body(
            &id,
            json!({"code": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
                "timeout_ms": 500}),
        )
        .await
        .expect(200);
    let took = started.elapsed();
    assert_eq!(r["status"], "timeout", "{r}");
    assert!(
        took < Duration::from_secs(6),
        "killed within timeout + grace, not later: {took:?}"
    );
    assert!(
        took >= Duration::from_millis(1000),
        "the cell had its grace period: {took:?}"
    );
    wait_processes_gone(&mark, 10).await;
    let info = api.info(&id).await;
    assert_eq!(info["state"], "dead", "{info}");
    let reason = info["dead_reason"].as_str().unwrap().to_string();
    assert!(reason.starts_with("timeout"), "{reason}");
    let body = api
        .exec_body(&id, json!({"code": "1"}))
        .await
        .expect_error(409, "session_dead");
    assert!(
        body["message"].as_str().unwrap().contains(&reason),
        "the 409 says why: {body}"
    );
    api.post(&format!("/sessions/{id}/interrupt"), json!({}))
        .send()
        .await
        .expect_error(409, "session_dead");
    api.get(&format!("/sessions/{id}/files"))
        .send()
        .await
        .expect_error(409, "session_dead");

    // The same through an explicit interrupt: status `interrupted`, reason `interrupt`.
    let (id, mark) = api.create_marked(None, json!({"language": "python"})).await;
    let running = start_cell(
        &api,
        &id,
        json!({"code": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"}),
    )
    .await;
    let asked = Instant::now();
    api.post(&format!("/sessions/{id}/interrupt"), json!({}))
        .send()
        .await
        .expect(200);
    let r = within(15, "the killed cell", running).await.unwrap().expect(200);
    assert_eq!(r["status"], "interrupted", "{r}");
    assert!(asked.elapsed() < Duration::from_secs(6), "{:?}", asked.elapsed());
    wait_processes_gone(&mark, 10).await;
    let info = api.info(&id).await;
    assert!(info["dead_reason"].as_str().unwrap().starts_with("interrupt"), "{info}");
    api.exec_body(&id, json!({"code": "1"}))
        .await
        .expect_error(409, "session_dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_ends_the_session_with_its_code() {
    let api = Api::plain();
    for (lang, code, expected) in [
        ("python", "exit(3)", 3),
        ("python", "import sys\nprint('bye')\nsys.exit()", 0),
        ("javascript", "console.log('bye'); process.exit(2)", 2),
        ("bash", "echo bye; exit 4", 4),
    ] {
        let (id, mark) = api.create_marked(None, json!({ "language": lang })).await;
        let r = api.exec(&id, code).await;
        assert_eq!(r["status"], "exit", "{lang} {code:?}: {r}");
        assert_eq!(r["exit_code"], expected, "{lang} {code:?}: {r}");
        if code.contains("bye") {
            assert_eq!(r["stdout"], "bye\n", "{lang}: output before the exit is kept: {r}");
        }
        let info = api.info(&id).await;
        assert_eq!(info["state"], "dead", "{lang}: {info}");
        assert!(info["dead_reason"].as_str().unwrap().starts_with("exit"), "{info}");
        api.exec_body(&id, json!({"code": "1"}))
            .await
            .expect_error(409, "session_dead");
        wait_processes_gone(&mark, 10).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_its_memory_limit_dies_with_memory_limit() {
    let api = Api::plain();
    let (id, mark) = api
        .create_marked(None, json!({"language": "python", "limits": {"memory_mb": 64}}))
        .await;
    api.exec_ok(&id, "small = b'x' * (8 << 20)").await;
    let r = api.exec(&id, "big = b'x' * (200 << 20)\nprint('survived')").await;
    assert_eq!(r["status"], "memory_limit", "{r}");
    assert_ne!(r["stdout"], "survived\n");
    let info = api.info(&id).await;
    assert_eq!(info["state"], "dead", "{info}");
    assert!(
        info["dead_reason"].as_str().unwrap().starts_with("memory_limit"),
        "{info}"
    );
    let body = api
        .exec_body(&id, json!({"code": "1"}))
        .await
        .expect_error(409, "session_dead");
    assert!(body["message"].as_str().unwrap().contains("memory_limit"), "{body}");
    wait_processes_gone(&mark, 10).await;
}

/// The CPU bandwidth (quota µs, period µs) the kernel holds for the cgroup host process `pid` is in.
fn cpu_bandwidth_of(pid: &str) -> (u64, u64) {
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let host = runbox_sandbox::cgroup::detect();
    let in_force = runbox_sandbox::probe::decide(&runbox_sandbox::probe::host(), &Default::default()).unwrap();
    let read = |p: std::path::PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    match in_force.cgroup.expect("cgroups in force") {
        runbox_sandbox::cgroup::CgroupVersion::V2 => {
            let path = membership.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            let max = read(
                host.v2_mount
                    .unwrap()
                    .join(path.trim_start_matches('/'))
                    .join("cpu.max"),
            );
            let (quota, period) = max.trim().split_once(' ').unwrap();
            (quota.parse().unwrap(), period.parse().unwrap())
        }
        runbox_sandbox::cgroup::CgroupVersion::V1 => {
            let path = membership
                .lines()
                .find_map(|l| {
                    let mut parts = l.splitn(3, ':');
                    parts.nth(1)?.split(',').any(|c| c == "cpu").then(|| parts.next())?
                })
                .unwrap();
            let dir = host.v1_cpu.unwrap().join(path.trim_start_matches('/'));
            let number = |f: &str| read(dir.join(f)).trim().parse::<u64>().unwrap();
            (number("cpu.cfs_quota_us"), number("cpu.cfs_period_us"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_held_to_its_cpu_bandwidth_one_core_by_default() {
    let api = Api::plain();
    for (limits, quota) in [(json!({}), 100_000), (json!({"cpu_millicores": 500}), 50_000)] {
        let (id, mark) = api
            .create_marked(None, json!({"language": "python", "limits": limits}))
            .await;
        let worker = processes_with_mark(&mark);
        let pid = worker
            .first()
            .expect("the session's worker runs")
            .split(':')
            .next()
            .unwrap();
        assert_eq!(cpu_bandwidth_of(pid), (quota, 100_000), "{limits}");
        api.delete(&format!("/sessions/{id}")).send().await.expect_bytes(204);
        wait_processes_gone(&mark, 10).await;
    }
    let body = api
        .post(
            "/sessions",
            json!({"language": "python", "limits": {"cpu_millicores": 50}}),
        )
        .send()
        .await
        .expect_error(422, "invalid_field");
    assert!(body["message"].as_str().unwrap().contains("cpu_millicores"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire_and_free_their_processes() {
    let api = Api::plain();
    let (short, short_mark) = api
        .create_marked(None, json!({"language": "python", "idle_timeout_s": 1}))
        .await;
    let (long, long_mark) = api.create_marked(None, json!({"language": "bash"})).await;
    assert_eq!(api.info(&short).await["idle_timeout_s"], 1);
    // Use keeps it alive: each cell restarts the idle clock.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        api.exec_ok(&short, "1").await;
        api.state.sessions.reap();
    }
    assert_eq!(api.info(&short).await["state"], "idle");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ended = api.state.sessions.reap();
    assert_eq!(ended, 1, "one session expired");
    let info = api.info(&short).await;
    assert_eq!(info["state"], "dead", "{info}");
    assert!(info["dead_reason"].as_str().unwrap().starts_with("idle"), "{info}");
    wait_processes_gone(&short_mark, 10).await;
    api.exec_body(&short, json!({"code": "1"}))
        .await
        .expect_error(409, "session_dead");
    // The other session, with the default idle timeout, lives on.
    assert_eq!(api.info(&long).await["state"], "idle");
    assert!(!processes_with_mark(&long_mark).is_empty());
    api.exec_ok(&long, "true").await;

    // Idle timeouts outside 1..=max are refused.
    for bad in [0, 1_000_000] {
        let body = api
            .post("/sessions", json!({"language": "python", "idle_timeout_s": bad}))
            .send()
            .await
            .expect(422);
        assert_eq!(body["details"]["field"], "idle_timeout_s", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_reaper_ends_idle_sessions_on_its_own() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbox"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env_remove("RUNBOX_API_KEY")
        .env_remove("RUNBOX_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start runbox serve");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        let _ = lines.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut lines, &mut std::io::sink());
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server says where it listens");
    let base = line
        .trim()
        .strip_prefix("runbox listening on ")
        .expect("the address line")
        .to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mark = unique_mark();
    let created: Value = client
        .post(format!("{base}/sessions"))
        .json(&json!({"language": "python", "idle_timeout_s": 1, "env": {MARK_VAR: mark}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("a session").to_string();
    assert!(!processes_with_mark(&mark).is_empty());
    let deadline = Instant::now() + Duration::from_secs(8);
    let info = loop {
        let info: Value = client
            .get(format!("{base}/sessions/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if info["state"] == "dead" || Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(info["state"], "dead", "the reaper ended the idle session: {info}");
    assert!(info["dead_reason"].as_str().unwrap().starts_with("idle"), "{info}");
    wait_processes_gone(&mark, 10).await;
    // The ended sandbox's jail is collected, not left a zombie of the server until the session is forgotten.
    let server = child.0.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !zombie_children_of(server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "zombies of the server: {:?}",
            zombie_children_of(server)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cells_run_one_at_a_time_in_arrival_order_with_a_bounded_queue() {
    let api = Api::new(|c| c.sessions.max_queued = 3);
    let id = api.create("python").await;
    api.exec_ok(&id, "import time\norder = []").await;
    let first = start_cell(&api, &id, json!({"code": "time.sleep(1.5)\norder.append('first')"})).await;
    let mut waiting = Vec::new();
    for name in ["second", "third", "fourth"] {
        let call = api.post(
            &format!("/sessions/{id}/execute"),
            json!({ "code": format!("order.append('{name}')\nlen(order)") }),
        );
        waiting.push(tokio::spawn(call.send()));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Three wait behind the running cell: the next one is refused at once.
    let refused = api.exec_body(&id, json!({"code": "order.append('refused')"})).await;
    let body = refused.expect_error(409, "session_busy");
    assert!(body["message"].as_str().unwrap().contains('3'), "{body}");
    assert_eq!(api.info(&id).await["state"], "busy");

    let r = within(20, "the first cell", first).await.unwrap().expect(200);
    assert_eq!(r["status"], "ok", "{r}");
    for (i, w) in waiting.into_iter().enumerate() {
        let r = within(20, "a queued cell", w).await.unwrap().expect(200);
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(
            r["result"]["text/plain"],
            (i + 2).to_string(),
            "cells ran in arrival order: {r}"
        );
        assert_eq!(r["execution_count"], i as u64 + 3, "{r}");
    }
    let r = api.exec_ok(&id, "order").await;
    assert_eq!(
        r["result"]["text/plain"], "['first', 'second', 'third', 'fourth']",
        "{r}"
    );

    // Many callers at once: each cell still runs alone (no interleaving) and every one runs.
    api.exec_ok(&id, "inside = 0\nclash = 0\nruns = 0").await;
    let mut all = Vec::new();
    for _ in 0..4 {
        let call = api.post(
            &format!("/sessions/{id}/execute"),
            json!({"code": "inside += 1\nclash += inside > 1\ntime.sleep(0.1)\nruns += 1\ninside -= 1"}),
        );
        all.push(tokio::spawn(call.send()));
    }
    for c in all {
        assert_eq!(within(20, "a cell", c).await.unwrap().expect(200)["status"], "ok");
    }
    let r = api.exec_ok(&id, "(runs, clash)").await;
    assert_eq!(r["result"]["text/plain"], "(4, 0)", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_session_ends_its_processes_and_frees_its_workspace() {
    let api = Api::plain();
    let (id, mark) = api.create_marked(None, json!({"language": "python"})).await;
    // A background process started by the cell dies with the session.
    api.exec_ok(
        &id,
        "import subprocess\np = subprocess.Popen(['sleep', '300'])\nopen('f.txt', 'w').write('x')",
    )
    .await;
    // (Right after its exec the new process's environment may not be readable yet.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while processes_with_mark(&mark).len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", processes_with_mark(&mark));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let workspace = api.data_dir().join("sessions").join(&id);
    assert!(workspace.exists(), "the workspace is under the data directory");
    api.delete(&format!("/sessions/{id}")).send().await.expect_bytes(204);
    wait_processes_gone(&mark, 10).await;
    api.get(&format!("/sessions/{id}"))
        .send()
        .await
        .expect_error(404, "not_found");
    api.exec_body(&id, json!({"code": "1"}))
        .await
        .expect_error(404, "not_found");
    api.delete(&format!("/sessions/{id}"))
        .send()
        .await
        .expect_error(404, "not_found");
    let deadline = Instant::now() + Duration::from_secs(10);
    while workspace.exists() {
        assert!(
            Instant::now() < deadline,
            "the workspace is still there: {}",
            workspace.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = api.get("/sessions").send().await.expect(200);
    assert!(
        list.as_array().unwrap().iter().all(|s| s["id"] != id.as_str()),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_language_without_sessions_or_an_unknown_one_is_refused() {
    let api = Api::plain();
    let body = api.post("/sessions", json!({"language": "c"})).send().await.expect(422);
    assert_eq!(body["code"], "sessions_unsupported", "{body}");
    assert_eq!(body["details"]["field"], "language", "{body}");
    let r = api
        .post("/sessions", json!({"language": "no-such-language"}))
        .send()
        .await;
    assert!(matches!(r.status.as_u16(), 404 | 422), "{}", r.text());
    let r = api
        .post("/sessions", json!({"language": "python", "bogus": 1}))
        .send()
        .await;
    assert!(
        matches!(r.status.as_u16(), 400 | 422),
        "unknown fields are refused: {}",
        r.text()
    );
    assert!(api
        .get("/sessions")
        .send()
        .await
        .expect(200)
        .as_array()
        .unwrap()
        .is_empty());
}

/// Signals queued host-wide for host uid 0 (`SigQ` counts the reading process's real user).
fn signals_queued_for_host_root() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("SigQ:")).expect("SigQ line");
    line[5..].trim().split('/').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_queued_signals_are_capped_and_not_charged_to_host_root() {
    let api = Api::plain();
    let id = api.create("python").await;
    let before = signals_queued_for_host_root();
    // The signals stay queued (blocked) in the session's interpreter after the cell.
    let code = "import ctypes, os, signal\nlibc = ctypes.CDLL(None, use_errno=True)\n\
                signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])\nn = 0\n\
                while n < 200000 and libc.sigqueue(os.getpid(), signal.SIGRTMIN, ctypes.c_void_p(0)) == 0:\n\
                \x20   n += 1\nprint(n)";
    let r = api.exec_ok(&id, code).await;
    let queued: u64 = r["stdout"].as_str().unwrap().trim().parse().unwrap();
    assert!((1000..=1024).contains(&queued), "{r}");
    let during = signals_queued_for_host_root();
    assert!(
        during < before + 500,
        "charged to host root: {before} before, {during} after"
    );
}
