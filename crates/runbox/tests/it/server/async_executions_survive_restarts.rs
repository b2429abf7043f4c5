//! Async executions against the real binary: queued, run, polled, cancelled, seen only by their key, delivered to
//! a callback, and kept across a restart (finished results stay; interrupted and queued jobs run after it).

use crate::live_server;

use std::time::Duration;

use live_server::*;
use serde_json::{json, Value};

fn stdout_of(view: &Value) -> &str {
    view["result"]["stdout"]
        .as_str()
        .unwrap_or_else(|| panic!("no result: {view}"))
}

fn is_done(view: &Value) -> bool {
    view["status"] == "done"
}

/// Submits `body`, checks the 202 and its Location, and returns the Location.
async fn submit(server: &Server, key: Option<&str>, body: Value) -> String {
    let r = server.call("POST", "/executions", key, Some(body)).await;
    let submitted = r.expect(202);
    let location = r.header("location").expect("a Location header").to_string();
    assert_eq!(submitted["location"], location.as_str());
    assert_eq!(location, format!("/executions/{}", submitted["id"].as_str().unwrap()));
    assert_eq!(submitted["status"], "queued");
    location
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_executions_run_and_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let location = submit(&server, None, json!({"language": "python", "code": "print(6 * 7)"})).await;
    let view = server.poll_job(&location, None, 20, is_done).await;
    assert_eq!(stdout_of(&view), "42\n");
    assert_eq!(view["result"]["status"], "ok");
    let (created, started, finished) = (
        view["created_at"].as_i64().unwrap(),
        view["started_at"].as_i64().unwrap(),
        view["finished_at"].as_i64().unwrap(),
    );
    assert!(created <= started && started <= finished, "{view}");
    // The alias submits too.
    let r = server
        .post("/execute_async", json!({"language": "bash", "code": "echo alias"}))
        .await;
    let alias = r.header("location").unwrap().to_string();
    r.expect(202);
    assert_eq!(stdout_of(&server.poll_job(&alias, None, 20, is_done).await), "alias\n");

    // A running job is cancelled: its sandbox is killed and the record says so.
    let marker = format!("runbox-async-sleeper-{}", std::process::id());
    let code = format!("exec -a {marker} sleep 100");
    let location = submit(&server, None, json!({"language": "bash", "code": code})).await;
    server.poll_job(&location, None, 20, |v| v["status"] == "running").await;
    within(10, "the sleeper starts", async {
        while processes_named(&marker).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let cancelled = server.delete(&location).await.expect(200);
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    // DELETE removed the record: it is gone at once, and the killed run does not bring it back.
    server.get(&location).await.expect_error(404, "not_found");
    within(10, "the sleeper ends", async {
        while !processes_named(&marker).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let metrics = server.get("/metrics").await.text();
    assert!(metrics.contains("runbox_async_jobs_running 0"), "{metrics}");
    server.get(&location).await.expect_error(404, "not_found");

    // A request the engine refuses is refused at submission (422) or recorded with the reason.
    let bad = json!({"language": "python", "files": [{"path": "../escape.py", "content": "print(1)"}]});
    let r = server.post("/executions", bad).await;
    if r.status == 422 {
        assert_eq!(r.json()["details"]["field"], "files[0].path");
    } else {
        r.expect(202);
        let view = server
            .poll_job(r.header("location").unwrap(), None, 20, |v| {
                is_done(v) && !v["error"].is_null()
            })
            .await;
        assert_eq!(view["error"]["details"]["field"], "files[0].path", "{view}");
        assert!(view["result"].is_null(), "{view}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_executions_wait_for_their_key_max_concurrent_and_are_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let one_at_a_time = format!("api_keys=[{{name = \"a\", key = \"{KEY_A}\", max_concurrent = 1}}]");
    let server = Server::start(dir.path(), &[&one_at_a_time, "max_concurrent=8"]);
    let marker = format!("runbox-async-one-at-a-time-{}", std::process::id());
    let code = format!("exec -a {marker} sleep 1");
    let mut locations = Vec::new();
    for _ in 0..3 {
        locations.push(submit(&server, Some(KEY_A), json!({"language": "bash", "code": code})).await);
    }
    let (mut most, mut saw_queued_while_one_ran) = (0, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let running = processes_named(&marker).len();
        most = most.max(running);
        let mut statuses = Vec::new();
        for l in &locations {
            let view = server.call("GET", l, Some(KEY_A), None).await.expect(200);
            statuses.push(view["status"].as_str().unwrap().to_string());
        }
        saw_queued_while_one_ran |= running == 1 && statuses.iter().any(|s| s == "queued");
        if statuses.iter().all(|s| s == "done") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "jobs unfinished: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most, 1, "a key with max_concurrent = 1 ran {most} async jobs at once");
    assert!(saw_queued_while_one_ran, "the waiting jobs stay queued");
    for l in &locations {
        let view = server.call("GET", l, Some(KEY_A), None).await.expect(200);
        assert_eq!(
            view["result"]["status"], "ok",
            "a job that waited for its slot was failed: {view}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_records_are_bounded_per_job_and_per_key_and_delete_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let keys = two_keys_setting();
    let sets = [
        keys.as_str(),
        "async_result_bytes=65536",
        "async_jobs_per_key=3",
        "async_bytes_per_key=1048576",
    ];
    let server = Server::start(dir.path(), &sets);
    // A job printing 4 MiB stores at most 64 KiB, and says it was cut.
    let big = json!({"language": "bash", "code": "head -c 4194304 /dev/zero | tr '\\0' x",
                     "limits": {"output_bytes": 8388608}});
    let location = submit(&server, Some(KEY_A), big).await;
    let view = server.poll_job(&location, Some(KEY_A), 30, is_done).await;
    let stored = view["result"].to_string();
    assert!(stored.len() <= 65536, "{} bytes stored", stored.len());
    assert_eq!(view["result"]["status"], "ok", "the verdict is kept");
    assert_eq!(view["result_truncated"], true);
    assert!(stdout_of(&view).starts_with("xxxx"));

    // Three records per key: the fourth submission is refused with a JSON code, another key is unaffected.
    let second = submit(&server, Some(KEY_A), json!({"language": "bash", "code": "echo 2"})).await;
    submit(&server, Some(KEY_A), json!({"language": "bash", "code": "echo 3"})).await;
    server
        .call(
            "POST",
            "/executions",
            Some(KEY_A),
            Some(json!({"language": "bash", "code": "echo 4"})),
        )
        .await
        .expect_error(429, "async_quota_exceeded");
    submit(&server, Some(KEY_B), json!({"language": "bash", "code": "echo b"})).await;
    let view = server.poll_job(&second, Some(KEY_A), 30, is_done).await;
    assert_eq!(view["result_truncated"], false, "{view}");

    // DELETE removes a finished record (GET is a 404 after it) and frees its share of the quota.
    let removed = server.call("DELETE", &location, Some(KEY_A), None).await.expect(200);
    assert_eq!(removed["status"], "done");
    server
        .call("GET", &location, Some(KEY_A), None)
        .await
        .expect_error(404, "not_found");
    server
        .call("DELETE", &location, Some(KEY_A), None)
        .await
        .expect_error(404, "not_found");
    submit(&server, Some(KEY_A), json!({"language": "bash", "code": "echo again"})).await;

    // Bytes per key: a request larger than what is left of the key's bytes is refused too.
    let code = format!("# {}\necho big", "y".repeat(1000 << 10));
    server
        .call(
            "POST",
            "/executions",
            Some(KEY_B),
            Some(json!({"language": "bash", "code": code})),
        )
        .await
        .expect_error(429, "async_quota_exceeded");

    // The database holds the records left, not the deleted one: its size stays bounded.
    let db = std::fs::metadata(dir.path().join("runbox.sqlite3")).unwrap().len()
        + std::fs::metadata(dir.path().join("runbox.sqlite3-wal")).map_or(0, |m| m.len());
    assert!(db < 8 << 20, "the database holds {db} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_executions_are_seen_only_by_the_key_that_submitted_them() {
    let dir = tempfile::tempdir().unwrap();
    let keys = two_keys_setting();
    let server = Server::start(dir.path(), &[&keys]);
    let location = submit(&server, Some(KEY_A), json!({"language": "bash", "code": "echo mine"})).await;
    let view = server.poll_job(&location, Some(KEY_A), 20, is_done).await;
    assert_eq!(stdout_of(&view), "mine\n");
    for method in ["GET", "DELETE"] {
        server
            .call(method, &location, Some(KEY_B), None)
            .await
            .expect_error(404, "not_found");
        server
            .call(method, &location, None, None)
            .await
            .expect_error(401, "unauthorized");
    }
    // Still there, unchanged, for its owner.
    let again = server.call("GET", &location, Some(KEY_A), None).await.expect(200);
    assert_eq!(again, view);
    // Without callback_allow_private, a loopback callback is refused.
    server
        .call(
            "POST",
            "/executions",
            Some(KEY_A),
            Some(json!({"code": "print(1)", "callback_url": "http://127.0.0.1:9/hook"})),
        )
        .await
        .expect_error(422, "invalid_field");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_executions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // One async job at a time (half of two slots), and a short grace so the running job is interrupted.
    let sets = ["max_concurrent=2", "shutdown_grace_ms=200"];
    let mut first = Server::start(dir.path(), &sets);
    let finished = submit(&first, None, json!({"language": "bash", "code": "echo finished"})).await;
    let finished_view = first.poll_job(&finished, None, 20, is_done).await;
    assert_eq!(stdout_of(&finished_view), "finished\n");

    let interrupted = submit(&first, None, json!({"language": "bash", "code": "sleep 3; echo ran"})).await;
    first
        .poll_job(&interrupted, None, 20, |v| v["status"] == "running")
        .await;
    // The only job slot is busy: this one waits in the queue.
    let queued = submit(&first, None, json!({"language": "bash", "code": "echo queued"})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(first.get(&queued).await.expect(200)["status"], "queued");

    let status = first.terminate().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", first.log());

    let second = Server::start(dir.path(), &sets);
    // The finished result is kept as it was.
    assert_eq!(second.get(&finished).await.expect(200), finished_view);
    // The interrupted job ran again from the start, and the queued one ran too.
    let view = second.poll_job(&interrupted, None, 30, is_done).await;
    assert_eq!(
        (view["result"]["status"].as_str(), stdout_of(&view)),
        (Some("ok"), "ran\n"),
        "{view}"
    );
    let view = second.poll_job(&queued, None, 30, is_done).await;
    assert_eq!(stdout_of(&view), "queued\n");
}

/// Accepts one HTTP request on a loopback port and hands over its body.
async fn callback_receiver() -> (String, tokio::sync::oneshot::Receiver<(String, Vec<u8>)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let (head, body) = loop {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "the callback connection closed early");
            data.extend_from_slice(&buf[..n]);
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("the callback has a Content-Length");
            while data.len() < end + 4 + length {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the callback body was cut short");
                data.extend_from_slice(&buf[..n]);
            }
            break (head, data[end + 4..end + 4 + length].to_vec());
        };
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        let _ = tx.send((head, body));
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_receives_the_finished_record() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["callback_allow_private=true"]);
    let (url, received) = callback_receiver().await;
    let location = submit(
        &server,
        None,
        json!({"language": "python", "code": "print('called back')", "callback_url": url}),
    )
    .await;
    let (head, body) = within(30, "the callback", received).await.expect("a callback");
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-type: application/json"),
        "{head}"
    );
    let record: Value = serde_json::from_slice(&body).expect("the callback body is JSON");
    openapi_check::committed().validate_named("JobView", &record).unwrap();
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(stdout_of(&record), "called back\n");
    // It is the record the API shows.
    assert_eq!(server.get(&location).await.expect(200), record);
}

/// Waits until the python and bash pools hold sandboxes their zygotes forked.
async fn wait_for_zygote_sandboxes(server: &Server) {
    within(60, "zygote-built warm sandboxes", async {
        loop {
            let health = server.get("/health").await.expect(200);
            let pools = health["pools"].as_array().cloned().unwrap_or_default();
            let ready = |lang: &str| {
                pools
                    .iter()
                    .any(|p| p["language"] == lang && p["zygote"] == "running" && p["ready"].as_u64() > Some(0))
            };
            if ready("python") && ready("bash") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// The most copies of `marker` seen at once until the job at `location` is done; returns that and the job's view.
async fn copies_until_done(server: &Server, location: &str, marker: &str, secs: u64) -> (usize, Value) {
    let mut most = 0;
    let view = within(secs, "the re-run job", async {
        loop {
            most = most.max(processes_named(marker).len());
            let view = server.get(location).await.expect(200);
            if is_done(&view) {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    (most, view)
}

/// Waits until a process named `marker` runs and returns it as (pid, start time).
async fn started(marker: &str) -> (u32, u64) {
    within(20, "the sleeper starts", async {
        loop {
            if let Some(&pid) = processes_named(marker).first() {
                if let Some(&(_, _, start)) = processes().iter().find(|p| p.0 == pid) {
                    return (pid, start);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The server SIGKILLed with its whole process group (jails included) mid-run: every process it started ends at
/// once — the run's own (its jail's PID 1 dies with its jail), the zygotes and every sandbox they forked (each
/// ends with its jail's connection) — so nothing outlives its limits. The restarted server runs the interrupted
/// job again, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_with_its_process_group_leaves_no_sandbox_and_its_job_runs_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("runbox-orphan-group-{}", std::process::id());
    let mut first = Server::start_in_own_group(dir.path(), &[]);
    wait_for_zygote_sandboxes(&first).await;
    let code = format!("exec -a {marker} sleep 300");
    let location = submit(
        &first,
        None,
        json!({"language": "bash", "code": code, "timeout_ms": 3000}),
    )
    .await;
    let sleeper = started(&marker).await;
    let run_started = std::time::Instant::now();
    let descendants = first.descendants();
    assert!(
        descendants.len() > 10,
        "zygotes, warm sandboxes and the run: {descendants:?}"
    );

    first.kill_group();
    // Well within the run's limit plus a second: nothing the server started is left.
    let left = within(10, "every process of the killed server ends", async {
        loop {
            let left = still_running(&descendants);
            if left.is_empty() || run_started.elapsed() > Duration::from_secs(3 + 1) {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        left.is_empty(),
        "still running after the server's group was killed: {left:?}"
    );
    assert!(processes_named(&marker).is_empty());

    let second = Server::start(dir.path(), &[]);
    let (copies, view) = copies_until_done(&second, &location, &marker, 30).await;
    assert_eq!(copies, 1, "the re-run job ran {copies} copies at once");
    assert_eq!(view["result"]["status"], "timeout", "{view}");
    assert!(still_running(&[sleeper]).is_empty());
}

/// The server's process (a descendant) holding a pidfd of `pid`: the jail of the sandbox whose PID 1 that is.
fn jail_watching(server: &Server, pid: u32) -> Option<u32> {
    let wanted = format!("Pid:\t{pid}\n");
    server.descendants().into_iter().map(|(p, _)| p).find(|p| {
        std::fs::read_dir(format!("/proc/{p}/fdinfo"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_to_string(fd.path()).is_ok_and(|info| info.contains(&wanted)))
    })
}

/// The parent pid of `pid`.
fn parent_of(pid: u32) -> Option<u32> {
    processes().into_iter().find(|p| p.0 == pid).map(|p| p.1)
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a process this test found and checked; no memory is passed.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0, "signal {pid}");
}

/// The server alone SIGKILLed while a silent cold run (Perl, no pool) sleeps under a 30 s limit: its jail sees its
/// caller gone and ends the run at once, rather than keeping it to its limit for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ends_as_soon_as_its_server_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("runbox-orphan-caller-{}", std::process::id());
    let mut first = Server::start(dir.path(), &[]);
    let code = format!("exec {{'sleep'}} '{marker}', '300';");
    submit(
        &first,
        None,
        json!({"language": "perl", "code": code, "timeout_ms": 30000}),
    )
    .await;
    let sleeper = started(&marker).await;
    first.kill();
    within(2, "the run ends with its server", async {
        while !still_running(&[sleeper]).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A cold run's jail killed outright (SIGKILL, nothing of its own clean-up runs): the sandbox's PID 1 dies with it
/// (its parent-death signal), and with PID 1 everything in the sandbox. The server reports the run as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ends_when_its_jail_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("runbox-orphan-jail-{}", std::process::id());
    let server = Server::start(dir.path(), &[]);
    let code = format!("exec {{'sleep'}} '{marker}', '300';");
    let location = submit(
        &server,
        None,
        json!({"language": "perl", "code": code, "timeout_ms": 30000}),
    )
    .await;
    let sleeper = started(&marker).await;
    let pid1 = parent_of(sleeper.0).expect("the sandbox's PID 1");
    let jail = jail_watching(&server, pid1).expect("the run's jail");
    signal(jail, libc::SIGKILL);
    within(2, "the run ends with its jail", async {
        while !still_running(&[sleeper]).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let view = server.poll_job(&location, None, 10, is_done).await;
    assert!(view["result"].is_null() && !view["error"].is_null(), "{view}");
}

/// What a killed server left running — here a run whose jail is stopped, so that it cannot end the run itself (as
/// a hung jail, or one of an older runbox, would not) — is ended by the next server on the same data directory,
/// with its cgroup and workspace removed, before that server serves or re-runs anything: then exactly one copy of
/// the job runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_ends_what_a_killed_predecessor_left_running_before_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("runbox-orphan-alone-{}", std::process::id());
    let mut first = Server::start(dir.path(), &[]);
    let code = format!("exec {{'sleep'}} '{marker}', '300';");
    let location = submit(
        &first,
        None,
        json!({"language": "perl", "code": code, "timeout_ms": 30000}),
    )
    .await;
    let sleeper = started(&marker).await;
    let jail = parent_of(sleeper.0)
        .and_then(|pid1| jail_watching(&first, pid1))
        .expect("the run's jail");
    let runs_dir = dir.path().join("runs");
    let left_workspaces: Vec<_> = std::fs::read_dir(&runs_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    signal(jail, libc::SIGSTOP);
    first.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        still_running(&[sleeper]),
        vec![sleeper],
        "the orphaned run should still be running"
    );

    let second = Server::start(dir.path(), &[]);
    // By the time the server listens, the predecessor's run is gone, with its workspaces and their mounts.
    let gone = still_running(&[sleeper]).is_empty();
    signal(jail, libc::SIGCONT);
    assert!(gone, "the orphaned run survived the restart");
    for ws in &left_workspaces {
        assert!(!ws.exists(), "{} was left behind", ws.display());
    }
    let groups = crate::common::run_cgroups_left(&left_workspaces);
    assert!(groups.is_empty(), "cgroups of the killed run left behind: {groups:?}");
    // The job runs again: one copy, the new one.
    let rerun = started(&marker).await;
    assert_ne!(rerun, sleeper);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(processes_named(&marker), vec![rerun.0]);
    // Deleting the job ends its run and removes its record.
    second.delete(&location).await.expect(200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !processes_named(&marker).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the deleted job's run went on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.call("GET", &location, None, None).await.expect(404);
}
