//! The real `runbox serve` binary, over a loopback socket: it answers, streams output while programs run, runs
//! interactive programs over a WebSocket, and on SIGTERM exits 0 leaving no sandbox behind (nor, when killed
//! outright, for long).

use crate::live_server;

use std::time::{Duration, Instant};

use live_server::*;
use serde_json::{json, Value};

fn validate(schema: &str, value: &Value) {
    openapi_check::committed()
        .validate_named(schema, value)
        .unwrap_or_else(|e| panic!("not a valid {schema}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_cleanly_and_kills_its_sandboxes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["shutdown_grace_ms=300"]);
    let health = server.get("/health").await.expect(200);
    assert_eq!(health["status"], "ok", "{health}");
    let r = server
        .post("/execute", json!({"code": "print('up')"}))
        .await
        .expect(200);
    assert_eq!(r["stdout"], "up\n", "{r}");

    // A run that would outlive the grace period, findable by its process name.
    let marker = format!("runbox-e2e-sleeper-{}", std::process::id());
    let client = server.client().clone();
    let url = format!("{}/execute", server.base);
    let code = format!("exec -a {marker} sleep 100");
    let held = tokio::spawn(async move {
        let r = client
            .post(url)
            .json(&json!({"language": "bash", "code": code}))
            .send()
            .await?;
        r.json::<Value>().await
    });
    // Another over a WebSocket, which outlives HTTP's graceful shutdown unless the server ends it.
    let ws_marker = format!("runbox-e2e-ws-sleeper-{}", std::process::id());
    let mut ws = server.websocket(None).await;
    ws.send(
        json!({"type": "execute", "id": "w", "language": "bash", "code": format!("exec -a {ws_marker} sleep 100")}),
    )
    .await;
    within(15, "the sleepers start", async {
        while processes_named(&marker).is_empty() || processes_named(&ws_marker).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let sandboxes = server.descendants();
    assert!(
        !sandboxes.is_empty(),
        "the run's jail and sandbox descend from the server"
    );

    let started = Instant::now();
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "exit status {status:?}; log:\n{}", server.log());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    // The in-flight request was answered: its run was cancelled after the grace period.
    let answer = within(5, "the in-flight answer", held)
        .await
        .unwrap()
        .expect("an answer before exit");
    assert_eq!(answer["status"], "killed", "{answer}");
    validate("ExecutionResult", &answer);

    assert_eq!(still_running(&sandboxes), vec![], "processes outlived the server");
    for m in [&marker, &ws_marker] {
        assert_eq!(
            processes_named(m),
            Vec::<u32>::new(),
            "the sandboxed {m} outlived the server"
        );
    }
    // The WebSocket ended with the server (with the run's result, if it got out in time).
    let ended = within(5, "the WebSocket to end", async {
        loop {
            match ws.try_next().await {
                Some(m) if m["type"] == "result" => break Some(m),
                Some(_) => continue,
                None => break None,
            }
        }
    })
    .await;
    if let Some(result) = ended {
        assert_eq!(result["result"]["status"], "killed", "{result}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "workspaces left behind: {leftovers:?}");
    server.expect_log("shutting down", 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_output_arrives_while_the_program_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let started = Instant::now();
    let mut response = within(
        10,
        "the stream's headers",
        server
            .client()
            .post(format!("{}/execute/stream", server.base))
            .json(&json!({"language": "python",
                "code": "import time\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b')"}))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");

    let mut events: Vec<(Duration, String, Value)> = Vec::new();
    let mut buffer = Vec::new();
    while let Some(chunk) = within(20, "the next stream chunk", response.chunk()).await.unwrap() {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buffer.drain(..end + 2).collect();
            if let Some((name, data)) = sse_event(&String::from_utf8(block).expect("events are UTF-8")) {
                events.push((started.elapsed(), name, data));
            }
        }
    }
    let first_stdout = events
        .iter()
        .find(|(_, n, _)| n == "stdout")
        .unwrap_or_else(|| panic!("no stdout event: {events:?}"));
    let (result_at, name, result) = events.last().unwrap();
    assert_eq!(name, "result", "{events:?}");
    // `print` may write the text and the newline separately.
    assert!(first_stdout.2["data"].as_str().unwrap().starts_with('a'), "{events:?}");
    assert!(
        *result_at >= first_stdout.0 + Duration::from_millis(1000),
        "the first output came at {:?}, the result at {result_at:?}: output was not streamed",
        first_stdout.0
    );
    assert_eq!(
        (result["status"].as_str(), result["stdout"].as_str()),
        (Some("ok"), Some("a\nb\n"))
    );
    validate("ExecutionResult", result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_runs_an_interactive_program() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut ws = server.websocket(None).await;
    ws.send(json!({"type": "execute", "id": "talk", "language": "python",
        "code": "name = input('who? ')\nprint('hi', name)\nprint('again?', input())"}))
        .await;
    ws.until("talk", "started", 10).await;
    // The prompt arrives before the program has any input: the program is waiting for us.
    let prompt = ws.until("talk", "stdout", 10).await;
    assert_eq!(prompt["data"], "who? ");
    ws.send(json!({"type": "stdin", "id": "talk", "data": "bob\n"})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ws.output("talk", "stdout").contains("hi bob\n") {
        assert!(Instant::now() < deadline, "no greeting: {:?}", ws.seen);
        ws.until("talk", "stdout", 10).await;
    }
    ws.send(json!({"type": "stdin", "id": "talk", "data": "yes"})).await;
    ws.send(json!({"type": "stdin_eof", "id": "talk"})).await;
    let result = ws.until("talk", "result", 10).await;
    assert_eq!(result["result"]["status"], "ok", "{result}");
    assert_eq!(result["result"]["stdout"], "who? hi bob\nagain? yes\n");
    assert_eq!(ws.output("talk", "stdout"), "who? hi bob\nagain? yes\n");
    validate("ExecutionResult", &result["result"]);

    // Messages about runs that do not exist, or of unknown types, are answered with errors.
    ws.send(json!({"type": "stdin", "id": "ghost", "data": "x"})).await;
    let e = ws.until("ghost", "error", 5).await;
    assert_eq!(e["code"], "not_found", "{e}");
    ws.send(json!({"type": "launch", "id": "what"})).await;
    let e = ws.until("what", "error", 5).await;
    assert_eq!(
        (e["code"].as_str(), e["details"]["field"].as_str()),
        (Some("invalid_field"), Some("type"))
    );
    ws.send(json!({"type": "execute", "id": "bad", "code": "1", "limits": {"memory_mb": 1}}))
        .await;
    let e = ws.until("bad", "error", 5).await;
    assert_eq!(e["details"]["field"], "limits.memory_mb", "{e}");
    ws.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_carries_several_runs_at_once_and_cancels_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut ws = server.websocket(None).await;
    ws.send(json!({"type": "execute", "id": "slow", "language": "python",
        "code": "import time\ntime.sleep(1.5)\nprint('slow')"}))
        .await;
    ws.send(json!({"type": "execute_code", "id": "fast", "language": "bash", "code": "echo fast"}))
        .await;
    let fast = ws.until("fast", "result", 10).await;
    assert_eq!(fast["result"]["stdout"], "fast\n", "{fast}");
    assert!(
        !ws.seen.iter().any(|m| m["id"] == "slow" && m["type"] == "result"),
        "the fast run finished while the slow one still ran"
    );
    let slow = ws.until("slow", "result", 10).await;
    assert_eq!(slow["result"]["stdout"], "slow\n", "{slow}");

    // A run id is unique among the runs in flight on a socket.
    ws.send(json!({"type": "execute", "id": "sleeper", "language": "bash", "code": "echo ready; sleep 100"}))
        .await;
    ws.until("sleeper", "started", 10).await;
    // Cancel once the program runs (the test below cancels at the very start).
    ws.until("sleeper", "stdout", 10).await;
    ws.send(json!({"type": "execute", "id": "sleeper", "language": "bash", "code": "echo twin"}))
        .await;
    let e = ws.until("sleeper", "error", 5).await;
    assert_eq!(e["details"]["field"], "id", "{e}");

    let cancelled_at = Instant::now();
    ws.send(json!({"type": "cancel", "id": "sleeper"})).await;
    let result = ws.until("sleeper", "result", 10).await;
    assert_eq!(
        result["result"]["status"],
        "killed",
        "{result}\nserver log:\n{}",
        server.log()
    );
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(3),
        "cancelling took {:?}",
        cancelled_at.elapsed()
    );
    validate("ExecutionResult", &result["result"]);
    // Ids given as numbers are fine too.
    ws.send(json!({"type": "execute", "id": 7, "language": "bash", "code": "echo seven"}))
        .await;
    assert_eq!(ws.until("7", "result", 10).await["result"]["stdout"], "seven\n");
    ws.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_needs_a_key_when_keys_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let keys = two_keys_setting();
    let server = Server::start(dir.path(), &[&keys]);
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
        }
        other => panic!("a WebSocket without a key was not refused with 401: {other:?}"),
    }
    let mut ws = server.websocket(Some(KEY_B)).await;
    ws.send(json!({"type": "execute", "id": "k", "language": "bash", "code": "echo keyed"}))
        .await;
    assert_eq!(ws.until("k", "result", 10).await["result"]["stdout"], "keyed\n");
    ws.close().await;

    // A browser cannot set headers on a WebSocket: it offers the key as a subprotocol (base64url), next to the
    // plain protocol, which is all the server answers with.
    let offer = |key: &str| {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        format!("runbox.v1, runbox.key.{encoded}")
    };
    let page = format!("http://{}", server.addr);
    let (mut ws, protocol) = server
        .try_websocket(&[("sec-websocket-protocol", &offer(KEY_A)), ("origin", &page)])
        .await
        .unwrap_or_else(|(status, body)| panic!("the browser-style key was refused: {status} {body}"));
    assert_eq!(
        protocol.as_deref(),
        Some("runbox.v1"),
        "only the plain protocol is echoed"
    );
    ws.send(json!({"type": "execute", "id": "b", "language": "bash", "code": "echo browser"}))
        .await;
    assert_eq!(ws.until("b", "result", 10).await["result"]["stdout"], "browser\n");
    ws.close().await;
    // A wrong key is refused the same way, and a key offered without the plain protocol is a 400 (a browser
    // would otherwise fail the connection for want of a protocol in the answer).
    let refused = server
        .try_websocket(&[("sec-websocket-protocol", &offer("not-a-key-0123456789"))])
        .await;
    match refused {
        Err((401, body)) => assert_eq!(body["code"], "unauthorized", "{body}"),
        Err(other) => panic!("a wrong key: {other:?}"),
        Ok(_) => panic!("a wrong key opened a WebSocket"),
    }
    let lone = offer(KEY_A).replace("runbox.v1, ", "");
    match server.try_websocket(&[("sec-websocket-protocol", &lone)]).await {
        Err((400, body)) => assert!(body["message"].as_str().unwrap().contains("runbox.v1"), "{body}"),
        Err(other) => panic!("a key without the protocol: {other:?}"),
        Ok(_) => panic!("a key without the protocol opened a WebSocket"),
    }
    // A valid key does not let a foreign page in.
    match server
        .try_websocket(&[
            ("sec-websocket-protocol", &offer(KEY_A)),
            ("origin", "https://evil.example"),
        ])
        .await
    {
        Err((403, body)) => assert_eq!(body["code"], "origin_not_allowed", "{body}"),
        Err(other) => panic!("a foreign page with a key: {other:?}"),
        Ok(_) => panic!("a foreign page opened a WebSocket"),
    }
    // Plain HTTP needs the key as well, and /health does not.
    server.get("/health").await.expect(200);
    server.get("/languages").await.expect_error(401, "unauthorized");
    let languages = server.call("GET", "/languages", Some(KEY_A), None).await.expect(200);
    assert!(languages.as_array().unwrap().iter().any(|l| l["id"] == "bash"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_from_a_foreign_page_is_refused_on_a_keyless_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["cors_origins=[\"https://app.example\"]"]);
    // Any site the developer visits could otherwise run code on this loopback server.
    for page in ["https://evil.example", "null", "http://127.0.0.1.evil.example"] {
        match server.try_websocket(&[("origin", page)]).await {
            Err((403, body)) => assert_eq!(body["code"], "origin_not_allowed", "{page}: {body}"),
            Err(other) => panic!("{page}: {other:?}"),
            Ok(_) => panic!("a page from {page} opened a WebSocket"),
        }
    }
    // The server's own pages, pages on loopback, configured origins and non-browser clients (no Origin) are in.
    let own = format!("http://{}", server.addr);
    for page in [own.as_str(), "http://localhost:5173", "https://app.example"] {
        let (mut ws, _) = server
            .try_websocket(&[("origin", page)])
            .await
            .unwrap_or_else(|(status, body)| panic!("{page} was refused: {status} {body}"));
        ws.send(json!({"type": "execute", "id": "o", "language": "bash", "code": "echo in"}))
            .await;
        assert_eq!(ws.until("o", "result", 10).await["result"]["stdout"], "in\n", "{page}");
        ws.close().await;
    }
    server.websocket(None).await.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_works_from_the_command_line_and_logs_to_a_pipe_are_plain() {
    // `*` used to pass `runbox config` and then panic after the "listening" line.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["cors_origins=[\"*\"]"]);
    let preflight = server
        .client()
        .request(reqwest::Method::OPTIONS, format!("{}/execute", server.base))
        .header("origin", "https://anyone.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, x-api-key")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = |name: &str| preflight.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(h("access-control-allow-origin").as_deref(), Some("*"));
    assert!(h("access-control-max-age").is_some(), "preflights are cached");
    let r = server
        .client()
        .post(format!("{}/execute", server.base))
        .header("origin", "https://anyone.example")
        .json(&json!({"language": "bash", "code": "echo cors"}))
        .send()
        .await
        .unwrap();
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("location"),
        "{exposed}"
    );
    assert_eq!(r.json::<Value>().await.unwrap()["stdout"], "cors\n");
    drop(server);

    // A comma-separated list in the variable; and with stderr a pipe and no NO_COLOR, no ANSI colour codes.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &[],
        &[("RUNBOX_CORS_ORIGINS", "https://a.example,https://b.example")],
    );
    let r = server
        .client()
        .get(format!("{}/health", server.base))
        .header("origin", "https://b.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://b.example")
    );
    let log = server.log();
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a piped log:\n{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_the_moment_a_run_starts_still_gives_a_killed_result() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut ws = server.websocket(None).await;
    for round in 0..5 {
        let id = format!("quick-{round}");
        ws.send(json!({"type": "execute", "id": id, "language": "bash", "code": "sleep 100"}))
            .await;
        ws.until(&id, "started", 10).await;
        ws.send(json!({"type": "cancel", "id": id})).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let end = loop {
            assert!(Instant::now() < deadline, "no end for {id}: {:?}", ws.seen);
            let m = ws.next(10).await;
            if m["id"] == id.as_str() && (m["type"] == "result" || m["type"] == "error") {
                break m;
            }
        };
        assert_eq!(end["type"], "result", "{end}\nserver log:\n{}", server.log());
        assert_eq!(end["result"]["status"], "killed", "{end}");
    }
    ws.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_runs_session_cells_and_interrupts_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // An empty POST (no body, as some clients send) starts a default Python session.
    let created = server.call("POST", "/sessions", None, None).await.expect(201);
    let session = created["id"].as_str().unwrap().to_string();
    let mut ws = server.websocket(None).await;
    ws.send(json!({"type": "execute", "id": "c1", "session_id": session, "code": "x = 20\nprint('set')\nx * 2"}))
        .await;
    let result = ws.until("c1", "result", 20).await;
    assert_eq!(result["result"]["status"], "ok", "{result}");
    assert_eq!(result["result"]["result"]["text/plain"], "40", "{result}");
    assert_eq!(ws.output("c1", "stdout"), "set\n");
    ws.send(json!({"type": "execute", "id": "c2", "session_id": session, "code": "while True: pass"}))
        .await;
    ws.until("c2", "started", 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(json!({"type": "cancel", "id": "c2"})).await;
    let result = ws.until("c2", "result", 20).await;
    assert_eq!(result["result"]["status"], "interrupted", "{result}");
    ws.send(json!({"type": "execute", "id": "c3", "session_id": session, "code": "x"}))
        .await;
    let result = ws.until("c3", "result", 20).await;
    assert_eq!(
        result["result"]["result"]["text/plain"], "20",
        "the session kept its state: {result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_no_sandbox_session_or_zygote_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    // Warm sandboxes forked by a zygote, and an open session.
    within(30, "a zygote-built warm sandbox", async {
        loop {
            let health = server.get("/health").await.expect(200);
            let python = health["pools"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["language"] == "python")
                .cloned();
            if python.is_some_and(|p| p["zygote"] == "running" && p["ready"].as_u64() > Some(0)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let session = server
        .post("/sessions", json!({"language": "python"}))
        .await
        .expect(201);
    assert!(session["id"].is_string(), "{session}");
    let sandboxes = server.descendants();
    assert!(sandboxes.len() > 5, "{sandboxes:?}");

    // SIGKILL: the server cannot clean anything up; its jails see their input close and end on their own.
    server.kill();
    let dir_root = dir.path().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !still_running(&sandboxes).is_empty() {
        assert!(
            Instant::now() < deadline,
            "outlived a killed server: {:?}",
            still_running(&sandboxes)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What a killed server cannot clean up, its successor would (workspace mounts); do it here, as one would.
    for dir in ["runs", "sessions"] {
        runbox_sandbox::workspace::remove_leftovers(&dir_root.join(dir));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_takes_the_key_rate_limit_per_execution() {
    let dir = tempfile::tempdir().unwrap();
    let limited = format!("api_keys=[{{name = \"a\", key = \"{KEY_A}\", rate_limit_per_minute = 3}}]");
    let server = Server::start(dir.path(), &[&limited]);
    // The upgrade is a request of its own (one token); the key then has two executions left this minute.
    let mut ws = server.websocket(Some(KEY_A)).await;
    for i in 0..6 {
        ws.send(json!({"type": "execute", "id": format!("r{i}"), "language": "bash", "code": "echo hi"}))
            .await;
    }
    let (mut ran, mut refused) = (0, 0);
    while ran + refused < 6 {
        let m = ws.next(20).await;
        match m["type"].as_str() {
            Some("result") => ran += 1,
            Some("error") => {
                assert_eq!(m["code"], "rate_limited", "{m}");
                refused += 1;
            }
            _ => {}
        }
    }
    assert_eq!((ran, refused), (2, 4), "seen: {:?}", ws.seen);
    ws.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_hangs_up_ends_a_silent_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let marker = format!("runbox-sse-hangup-{}", std::process::id());
    let response = within(
        10,
        "the stream's headers",
        server
            .client()
            .post(format!("{}/execute/stream", server.base))
            .json(&json!({"language": "bash", "code": format!("exec -a {marker} sleep 30"), "timeout_ms": 30000}))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    within(10, "the silent program starts", async {
        while processes_named(&marker).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The client goes away without a word; the program never writes, so no failed write can tell the server.
    drop(response);
    let gone_by = Instant::now() + Duration::from_millis(1500);
    while !processes_named(&marker).is_empty() {
        assert!(
            Instant::now() < gone_by,
            "the run outlived its client: {:?}\nserver log:\n{}",
            processes_named(&marker),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `runbox ARGS` with only the given RUNBOX_* variables: (success, stdout, stderr).
fn runbox_with(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_runbox"));
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RUNBOX_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run runbox");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn runbox_config_masks_every_key_and_weak_or_shared_keys_stop_the_start() {
    let long = "a-long-enough-secret-0123";
    let (ok, out, err) = runbox_with(&["config"], &[("RUNBOX_API_KEY", long)]);
    assert!(ok, "{err}");
    assert!(!out.contains("a-long") && out.contains("***(25 chars)"), "{out}");

    // A short key stops the start (`config` loads the configuration as `serve` does, without listening anywhere),
    // naming the key, never printing it.
    let (ok, out, err) = runbox_with(&["config", "--listen", "0.0.0.0:8080"], &[("RUNBOX_API_KEY", "s3k")]);
    assert!(!ok, "a 3-character key was accepted: {out}");
    assert!(err.contains("\"default\"") && err.contains("16"), "{err}");
    assert!(
        !err.contains("s3k") && !out.contains("s3k"),
        "the key was printed: {err}{out}"
    );

    // A config key named like the one RUNBOX_API_KEY gets would share its owner identity: refused.
    let shared = format!("api_keys=[{{name = \"default\", key = \"{KEY_A}\"}}]");
    let (ok, _, err) = runbox_with(&["config", "--set", &shared], &[("RUNBOX_API_KEY", long)]);
    assert!(!ok && err.contains("two keys"), "{err}");
}
