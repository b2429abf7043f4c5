//! Work the server does not admit: a key over its rate (429 with `Retry-After`), a draining server and a full
//! async queue (503).

use super::*;

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let app = TestApp::new(no_jail(), |c| {
        c.api_keys = vec![
            runbox_server::config::ApiKeyConfig {
                rate_limit_per_minute: Some(2),
                ..key("limited", KEY_A)
            },
            key("free", KEY_B),
        ];
    });
    app.get("/").key(KEY_A).send().await.expect(200);
    app.get("/languages").key(KEY_A).send().await.expect(200);
    for path in ["/", "/languages", "/executions/exec_0123"] {
        let r = app.get(path).key(KEY_A).send().await;
        r.expect_error(429, "rate_limited");
        let retry: u64 = r
            .header("retry-after")
            .expect("a 429 says when to retry")
            .parse()
            .expect("Retry-After is whole seconds");
        // Two per minute: the next token comes within 30 s.
        assert!((1..=31).contains(&retry), "Retry-After {retry}");
    }
    let r = app
        .post("/execute", json!({"code": "print(1)"}))
        .key(KEY_A)
        .send()
        .await;
    r.expect_error(429, "rate_limited");
    // Other keys and /health are not limited by it.
    app.get("/").key(KEY_B).send().await.expect(200);
    app.get("/health").send().await.expect(200);
    let metrics = app.get("/metrics").key(KEY_B).send().await.text();
    assert!(
        metrics.contains("runbox_rejected_requests_total{reason=\"rate_limited\"} 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_draining_server_refuses_new_work_with_503() {
    let app = app();
    app.state.admission.start_draining();
    let body = json!({"language": "python", "code": "print(1)"});
    for path in [
        "/execute",
        "/execute/stream",
        "/executions",
        "/process/interpreter/execute",
    ] {
        // The compatibility route has no `language` (and refuses unknown fields).
        let body = if path.starts_with("/process") {
            json!({"code": "print(1)"})
        } else {
            body.clone()
        };
        let r = app.post(path, body).send().await;
        r.expect_error(503, "draining");
        assert!(r.header("retry-after").is_some(), "{path}: a 503 says when to retry");
    }
    let health = app.get("/health").send().await.expect(200);
    assert_eq!(health["status"], "draining");
    assert_eq!(app.state.jobs.count("queued").await, 0);
}

#[tokio::test]
async fn a_full_async_queue_is_503() {
    // The app has no worker, so submissions stay queued.
    let app = TestApp::new(no_jail(), |c| c.max_async_queued = 2);
    let body = json!({"language": "bash", "code": "echo hi"});
    for _ in 0..2 {
        app.post("/executions", body.clone()).send().await.expect(202);
    }
    let r = app.post("/executions", body).send().await;
    r.expect_error(503, "overloaded");
    assert!(r.header("retry-after").is_some());
}
