//! Async executions against the real binary: queued, run, polled, cancelled, seen only by their key, delivered to
//! a callback, and kept across a restart (finished results stay; interrupted and queued jobs run after it).

mod live_server;

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
    let view = server
        .poll_job(&location, None, 10, |v| !v["result"].is_null() || !v["error"].is_null())
        .await;
    assert_eq!(view["status"], "cancelled", "{view}");
    assert_eq!(view["result"]["status"], "killed", "{view}");
    within(10, "the sleeper ends", async {
        while !processes_named(&marker).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let metrics = server.get("/metrics").await.text();
    assert!(metrics.contains("runbox_async_jobs_running 0"), "{metrics}");

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
