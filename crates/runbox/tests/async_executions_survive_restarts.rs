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
