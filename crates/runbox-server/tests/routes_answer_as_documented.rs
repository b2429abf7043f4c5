//! Every route answers as `openapi.json` documents, and every refusal is a JSON `{code, message}` with the right
//! status. These requests never reach a sandbox (the jail cannot even start); runs are tested in
//! `crates/runbox/tests/it/api/api_runs_code_in_sandboxes.rs` and `server/server_binary_end_to_end.rs`.

use runbox_testkit::app as common;

use common::*;
use serde_json::{json, Value};

fn app() -> TestApp {
    TestApp::new(no_jail(), |_| {})
}

fn app_with_keys() -> TestApp {
    TestApp::new(no_jail(), two_keys)
}

#[tokio::test]
async fn a_keyless_server_answers_only_to_loopback_and_configured_host_names() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn with_host(router: &axum::Router, method: &str, path: &str, host: &str) -> (u16, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"language": "bash", "code": "echo 1"}"#))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    let keyless = TestApp::new(no_jail(), |c| c.allowed_hosts = vec!["runbox.lan".into()]);
    let router = runbox_server::app(keyless.state.clone());
    for host in [
        "localhost",
        "localhost:8080",
        "127.0.0.1:8080",
        "127.3.2.1",
        "[::1]:9",
        "runbox.lan:1234",
    ] {
        assert_eq!(with_host(&router, "GET", "/", host).await.0, 200, "{host}");
    }
    // A page re-pointed at loopback by DNS rebinding sends its own name: refused before anything runs.
    for host in [
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
        "192.168.1.2:8080",
    ] {
        for (method, path) in [("GET", "/"), ("POST", "/execute"), ("GET", "/sessions")] {
            let (status, body) = with_host(&router, method, path, host).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (421, Some("host_not_allowed")),
                "{method} {path} {host}"
            );
        }
    }
    // With keys, the key is the defence and any name may be used.
    let keyed = app_with_keys();
    let router = runbox_server::app(keyed.state.clone());
    assert_eq!(with_host(&router, "GET", "/health", "runbox.example.com").await.0, 200);
}

#[tokio::test]
async fn info_routes_answer() {
    let app = app();
    let info = app.get("/").send().await.expect(200);
    assert_eq!(info["name"], "runbox");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (&info["docs"], &info["openapi"], &info["redoc"]),
        (&json!("/docs"), &json!("/openapi.json"), &json!("/redoc"))
    );

    let health = app.get("/health").send().await.expect(200);
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(
        (health["active_runs"].as_i64(), health["queued"].as_i64()),
        (Some(0), Some(0))
    );

    let languages = app.get("/languages").send().await.expect(200);
    let python = languages
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "python")
        .expect("python is listed");
    assert_eq!(python["available"], true, "{python}");
    // Discovery is cached: /health now counts the languages.
    let health = app.get("/health").send().await.expect(200);
    assert!(health["languages"]["available"].as_u64().unwrap() >= 1, "{health}");

    let metrics = app.get("/metrics").send().await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain"));
    for name in [
        "runbox_active_runs 0",
        "runbox_queue_depth 0",
        "runbox_async_jobs_queued 0",
    ] {
        assert!(metrics.text().contains(name), "{name} missing from\n{}", metrics.text());
    }
}

#[tokio::test]
async fn documentation_is_served_from_the_binary() {
    let app = app_with_keys();
    // The served document is the committed one.
    let served = app.get("/openapi.json").send().await.expect(200);
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served, committed);

    let docs = app.get("/docs/").send().await;
    assert_eq!(docs.status, 200, "{}", docs.text());
    assert!(docs.header("content-type").unwrap().starts_with("text/html"));
    assert!(docs.text().contains("swagger-ui"), "{}", docs.text());
    // Its assets come from the binary too, and it loads our document.
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
        let r = app.get(asset).send().await;
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.body.len() > 10_000, "{asset} is {} bytes", r.body.len());
    }
    let init = app.get("/docs/swagger-initializer.js").send().await;
    assert_eq!(init.status, 200);
    assert!(init.text().contains("/openapi.json"), "{}", init.text());

    let redoc = app.get("/redoc").send().await;
    assert_eq!(redoc.status, 200);
    assert!(redoc.header("content-type").unwrap().starts_with("text/html"));
    let html = redoc.text();
    assert!(html.contains("openapi.json"), "the reference page reads the document");
    for external in ["src=\"http", "href=\"http", "src='http", "@import"] {
        assert!(
            !html.contains(external),
            "the reference page loads an external asset ({external})"
        );
    }
}

/// Routes anyone may read with keys configured: liveness and the documentation (Swagger UI cannot send a key
/// when it fetches the document).
const PUBLIC: &[&str] = &["/health", "/health/ready", "/openapi.json", "/redoc"];

#[tokio::test]
async fn health_and_docs_need_no_key_but_every_other_route_does() {
    let app = app_with_keys();
    let body = json!({"language": "python", "code": "print(1)"});
    for (method, path) in runbox_server::router::ROUTES {
        let path = path.replace("{id}", "exec_0123");
        let call = || {
            let c = app.call(&method.to_uppercase(), &path);
            if *method == "post" {
                c.json(body.clone())
            } else {
                c
            }
        };
        let anonymous = call().send().await;
        let wrong = call().key("not-a-key-0123456789").send().await;
        let wrong_header = call().header("x-api-key", "not-a-key-0123456789").send().await;
        if path == "/health/ready" {
            // Public, and 503 here: this state's jail cannot start, and no trial sandbox ran.
            assert_eq!(anonymous.status, 503, "{method} {path} is public: {}", anonymous.text());
        } else if PUBLIC.contains(&path.as_str()) {
            assert_eq!(anonymous.status, 200, "{method} {path} is public");
        } else if path.starts_with("/judge0/") || path.starts_with("/api/v2/") {
            // The drop-in APIs refuse in their incumbent's shape: Judge0 `{error}`, Piston `{message}`.
            for r in [anonymous, wrong, wrong_header] {
                assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
                let body = r.json();
                assert!(body["error"].is_string() || body["message"].is_string(), "{body}");
                assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"runbox\""));
            }
        } else {
            for r in [anonymous, wrong, wrong_header] {
                r.expect_error(401, "unauthorized");
                // RFC 9110: a 401 names the scheme that would work.
                assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"runbox\""));
            }
        }
    }
    assert_eq!(app.get("/docs/").send().await.status, 200, "Swagger UI is public");
    app.call("POST", "/execute_async")
        .json(body.clone())
        .send()
        .await
        .expect_error(401, "unauthorized");

    // Both ways of presenting a key work, for every key.
    for k in [KEY_A, KEY_B] {
        app.get("/languages").key(k).send().await.expect(200);
        app.get("/languages").header("x-api-key", k).send().await.expect(200);
        // The scheme is case-insensitive (RFC 9110), as is the whitespace after it.
        for scheme in ["bearer", "BEARER", "BeArEr "] {
            app.get("/languages")
                .header("authorization", &format!("{scheme} {k}"))
                .send()
                .await
                .expect(200);
        }
        // A wrong Authorization header does not hide a valid X-API-Key, nor the other way round.
        app.get("/languages")
            .key("not-a-key-0123456789")
            .header("x-api-key", k)
            .send()
            .await
            .expect(200);
        app.get("/languages")
            .key(k)
            .header("x-api-key", "not-a-key-0123456789")
            .send()
            .await
            .expect(200);
    }
    // A key is a whole secret, not a prefix, and only as a bearer token.
    app.get("/")
        .key(&KEY_A[..10])
        .send()
        .await
        .expect_error(401, "unauthorized");
    app.get("/")
        .key(&format!("{KEY_A}x"))
        .send()
        .await
        .expect_error(401, "unauthorized");
    app.get("/")
        .header("authorization", &format!("Basic {KEY_A}"))
        .send()
        .await
        .expect_error(401, "unauthorized");
    let metrics = app.get("/metrics").key(KEY_A).send().await.text();
    assert!(
        metrics.contains("runbox_rejected_requests_total{reason=\"unauthorized\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = app();
    for path in [
        "/execute",
        "/execute/stream",
        "/executions",
        "/process/interpreter/execute",
    ] {
        for body in [
            &b"{\"code\": \"print(1)\""[..],
            b"{\"code\": \"1\",}",
            b"{\"code\": \"1\"} trailing",
            b"",
        ] {
            app.call("POST", path)
                .raw("application/json", body.to_vec())
                .send()
                .await
                .expect_error(400, "malformed_request");
        }
    }
}

#[tokio::test]
async fn bodies_that_are_not_json_are_415() {
    let app = app();
    for path in [
        "/execute",
        "/execute/stream",
        "/executions",
        "/process/interpreter/execute",
    ] {
        for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
            app.call("POST", path)
                .raw(content_type, br#"{"code": "print(1)"}"#.to_vec())
                .send()
                .await
                .expect_error(415, "unsupported_media_type");
        }
    }
    // JSON with parameters or a +json suffix is JSON; the refusal after it is about the content.
    for content_type in ["application/json; charset=utf-8", "application/vnd.runbox+json"] {
        app.call("POST", "/execute")
            .raw(content_type, br#"{"code": "1", "limits": {"memory_mb": 1}}"#.to_vec())
            .send()
            .await
            .expect_invalid("invalid_field", "limits.memory_mb");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = TestApp::new(no_jail(), |c| c.body_limit_bytes = 1024);
    let big = json!({"code": format!("# {}\nprint(1)", "x".repeat(4096))});
    for path in [
        "/execute",
        "/execute/stream",
        "/executions",
        "/process/interpreter/execute",
    ] {
        app.post(path, big.clone())
            .send()
            .await
            .expect_error(413, "body_too_large");
    }
    // Just under the limit is read (and refused for what it says).
    let small = json!({"code": "x".repeat(900), "limits": {"memory_mb": 1}});
    app.post("/execute", small)
        .send()
        .await
        .expect_invalid("invalid_field", "limits.memory_mb");
}

#[tokio::test]
async fn invalid_fields_are_422_and_named() {
    let app = app();
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"code": "1", "limits": {"memory_mb": 1}}),
            "invalid_field",
            "limits.memory_mb",
        ),
        (
            json!({"code": "1", "limits": {"memory_mb": 1_000_000}}),
            "invalid_field",
            "limits.memory_mb",
        ),
        (
            json!({"code": "1", "limits": {"memory_mb": "lots"}}),
            "invalid_field",
            "limits.memory_mb",
        ),
        // The `timeout_ms` shorthand is named as sent, not as the `limits.timeout_ms` it stands for.
        (json!({"code": "1", "timeout_ms": 0}), "invalid_field", "timeout_ms"),
        (
            json!({"code": "1", "timeout_ms": 3_600_000}),
            "invalid_field",
            "timeout_ms",
        ),
        (
            json!({"code": "1", "limits": {"timeout_ms": 3_600_000}}),
            "invalid_field",
            "limits.timeout_ms",
        ),
        (
            json!({"code": "1", "limits": {"cpu_mss": 5}}),
            "invalid_field",
            "limits.cpu_mss",
        ),
        (json!({"code": 5}), "invalid_field", "code"),
        (json!({"language": "python"}), "invalid_field", "code"),
        (json!({"code": "1", "langauge": "python"}), "invalid_field", "langauge"),
        (json!({"code": "1", "env": {"1BAD": "x"}}), "invalid_field", "env.1BAD"),
        (json!({"code": "1", "args": [1]}), "invalid_field", "args[0]"),
        (json!({"code": "%%fortran\nx"}), "invalid_field", "code"),
        (
            json!({"code": "1", "tests": [{"stdin": "", "expected": "1"}]}),
            "invalid_field",
            "tests[0].expected",
        ),
        // A missing required field is named, not reported as the whole `body`.
        (
            json!({"files": [{"content": "print(1)"}]}),
            "invalid_field",
            "files[0].path",
        ),
        (
            json!({"files": [{"path": "../x", "content": "print(1)"}]}),
            "invalid_field",
            "files[0].path",
        ),
        (
            json!({"code": "1", "files": [{"path": "ok.py", "content": ""}, {"path": "/etc/x", "content": ""}]}),
            "invalid_field",
            "files[1].path",
        ),
        (
            json!({"files": [{"path": "a.py", "content": "%%%", "encoding": "base64"}]}),
            "invalid_field",
            "files[0].content",
        ),
        (
            json!({"language": "cobol-9000", "code": "1"}),
            "unknown_language",
            "language",
        ),
        (
            json!({"code": "1", "callback_url": "https://example.com/hook"}),
            "invalid_field",
            "callback_url",
        ),
    ];
    for (body, code, field) in &cases {
        let r = app.post("/execute", body.clone()).send().await;
        assert_eq!(r.status, 422, "{body} → {}", r.text());
        r.expect_invalid(code, field);
    }
    // The same checks guard the streaming route before it starts a stream.
    app.post("/execute/stream", json!({"code": "1", "limits": {"memory_mb": 1}}))
        .send()
        .await
        .expect_invalid("invalid_field", "limits.memory_mb");
    // Async submissions are checked before they are queued.
    for (body, code, field) in [
        (
            json!({"code": "1", "limits": {"memory_mb": 1}}),
            "invalid_field",
            "limits.memory_mb",
        ),
        (json!({"language": "nope", "code": "1"}), "unknown_language", "language"),
        (
            json!({"code": "1", "callback_url": "http://127.0.0.1:9/hook"}),
            "invalid_field",
            "callback_url",
        ),
        (
            json!({"code": "1", "callback_url": "http://localhost/hook"}),
            "invalid_field",
            "callback_url",
        ),
        (
            json!({"code": "1", "callback_url": "http://169.254.169.254/x"}),
            "invalid_field",
            "callback_url",
        ),
        (
            json!({"code": "1", "callback_url": "ftp://example.com/x"}),
            "invalid_field",
            "callback_url",
        ),
        (
            json!({"code": "1", "callback_url": "not a url"}),
            "invalid_field",
            "callback_url",
        ),
    ] {
        app.post("/executions", body).send().await.expect_invalid(code, field);
    }
    assert_eq!(app.state.jobs.count("queued").await, 0, "nothing invalid was queued");
    // The compatibility route.
    for body in [json!({"code": "1", "timeout": -1}), json!({"code": "1", "timeout": 0})] {
        app.post("/process/interpreter/execute", body)
            .send()
            .await
            .expect_invalid("invalid_field", "timeout");
    }
    app.post("/process/interpreter/execute", json!({"timeout": 1}))
        .send()
        .await
        .expect_invalid("invalid_field", "code");
}

#[tokio::test]
async fn unknown_routes_and_executions_are_404() {
    let app = app_with_keys();
    for path in ["/nope", "/execute/nope", "/executions/exec_0123/result", "/v1/execute"] {
        app.get(path).key(KEY_A).send().await.expect_error(404, "not_found");
    }
    app.get("/executions/exec_does_not_exist")
        .key(KEY_A)
        .send()
        .await
        .expect_error(404, "not_found");
    app.delete("/executions/exec_does_not_exist")
        .key(KEY_A)
        .send()
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn wrong_methods_are_405() {
    let app = app();
    for (method, path) in [
        ("GET", "/execute"),
        ("PUT", "/execute"),
        ("DELETE", "/health"),
        ("POST", "/languages"),
        ("GET", "/executions"),
        ("POST", "/executions/exec_0123"),
        ("POST", "/ws"),
        ("GET", "/process/interpreter/execute"),
    ] {
        let r = app.call(method, path).send().await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        r.expect_error(405, "method_not_allowed");
    }
}

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

#[tokio::test]
async fn async_executions_belong_to_the_key_that_submitted_them() {
    // No worker runs in this app: the job stays queued until cancelled.
    let app = app_with_keys();
    let r = app
        .post("/executions", json!({"language": "bash", "code": "echo hi"}))
        .key(KEY_A)
        .send()
        .await;
    let submitted = r.expect(202);
    let id = submitted["id"].as_str().unwrap().to_string();
    let location = format!("/executions/{id}");
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(submitted["location"], location);
    assert_eq!(submitted["status"], "queued");

    // Another key cannot see it or cancel it: it does not exist for them.
    app.get(&location)
        .key(KEY_B)
        .send()
        .await
        .expect_error(404, "not_found");
    app.delete(&location)
        .key(KEY_B)
        .send()
        .await
        .expect_error(404, "not_found");
    let view = app.get(&location).key(KEY_A).send().await.expect(200);
    assert_eq!(
        (view["id"].as_str(), view["status"].as_str()),
        (Some(id.as_str()), Some("queued"))
    );
    assert!(view["result"].is_null() && view["started_at"].is_null(), "{view}");

    // Its owner can cancel it, which removes the record: afterwards it is gone for everyone.
    let cancelled = app.delete(&location).key(KEY_A).send().await.expect(200);
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["finished_at"].is_i64(), "{cancelled}");
    app.delete(&location)
        .key(KEY_A)
        .send()
        .await
        .expect_error(404, "not_found");
    app.get(&location)
        .key(KEY_A)
        .send()
        .await
        .expect_error(404, "not_found");
    app.get(&location)
        .key(KEY_B)
        .send()
        .await
        .expect_error(404, "not_found");

    // The alias queues too.
    let r = app
        .post("/execute_async", json!({"language": "bash", "code": "echo hi"}))
        .key(KEY_B)
        .send()
        .await;
    let id_b = r.expect(202)["id"].as_str().unwrap().to_string();
    app.get(&format!("/executions/{id_b}"))
        .key(KEY_A)
        .send()
        .await
        .expect_error(404, "not_found");
    app.get(&format!("/executions/{id_b}"))
        .key(KEY_B)
        .send()
        .await
        .expect(200);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made_up() {
    let app = app();
    let r = app.get("/health").header("x-request-id", "trace-42").send().await;
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
    let r = app.get("/health").send().await;
    assert!(r.header("x-request-id").is_some_and(|id| id.starts_with("req_")));
    let r = app
        .get("/health")
        .header("x-request-id", "bad id with spaces")
        .send()
        .await;
    assert_ne!(r.header("x-request-id"), Some("bad id with spaces"));
}

#[test]
fn the_schema_check_refuses_what_the_document_forbids() {
    let doc = openapi_check::committed();
    let good = json!({"status": "ok", "language": "python", "version": null, "exit_code": 0, "signal": null,
        "stdout": "", "stderr": "", "stdout_truncated": false, "stderr_truncated": false, "wall_ms": 1,
        "cpu_ms": null, "memory_peak_bytes": null, "duration_ms": 1});
    doc.validate_named("ExecutionResult", &good).unwrap();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("stdout");
    let mut bad_enum = good.clone();
    bad_enum["status"] = json!("exploded");
    let mut bad_type = good.clone();
    bad_type["wall_ms"] = json!("fast");
    let mut negative = good.clone();
    negative["wall_ms"] = json!(-1);
    let mut bad_nested = good.clone();
    bad_nested["summary"] = json!({"total": 1});
    for (what, value) in [
        ("a missing property", missing),
        ("a value outside the enum", bad_enum),
        ("a wrong type", bad_type),
        ("a value under the minimum", negative),
        ("a wrong nested object", bad_nested),
    ] {
        assert!(doc.validate_named("ExecutionResult", &value).is_err(), "{what} passed");
    }
    assert!(doc
        .validate_named("ErrorBody", &json!({"code": 1, "message": "m"}))
        .is_err());
    // A status the operation does not document fails the check.
    let err = doc.check_response("GET", "/health", 418, &[], b"{}").unwrap_err();
    assert!(err.contains("not documented"), "{err}");
    let headers = [("content-type".to_string(), "application/json".to_string())];
    assert!(doc
        .check_response(
            "POST",
            "/executions",
            202,
            &headers,
            br#"{"id":"x","status":"queued","location":"/executions/x"}"#
        )
        .unwrap_err()
        .contains("Location"));
}

fn mcp_initialize(app: &TestApp, host: &str) -> Call {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}});
    app.post("/mcp", body)
        .header("accept", "application/json, text/event-stream")
        .header("host", host)
}

#[tokio::test]
async fn mcp_takes_the_same_keys_and_origin_rule_as_every_route() {
    let app = app_with_keys();
    let host = "runbox.example:8080";
    mcp_initialize(&app, host)
        .send()
        .await
        .expect_error(401, "unauthorized");
    mcp_initialize(&app, host)
        .key("not-a-key-0123456789")
        .send()
        .await
        .expect_error(401, "unauthorized");
    mcp_initialize(&app, host)
        .key(KEY_A)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect_error(403, "origin_not_allowed");
    // With keys the server may be public: any Host, the key is the guard.
    let ok = mcp_initialize(&app, host).key(KEY_A).send().await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().contains("\"runbox\""), "{}", ok.text());
}

#[tokio::test]
async fn mcp_without_keys_answers_only_to_loopback_host_names() {
    // A key-less server listens on loopback; a page on a rebound DNS name would be same-origin, so the server's
    // Host guard covers /mcp as every route.
    let app = app();
    let ok = mcp_initialize(&app, "127.0.0.1:8080").send().await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let ok = mcp_initialize(&app, "localhost:8080").send().await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    mcp_initialize(&app, "attacker.example:8080")
        .send()
        .await
        .expect_error(421, "host_not_allowed");
}

/// A cluster node (`n1`, with a peer `n2` whose address answers nothing) routes by the node an id names: a gone
/// owner is `410 session_lost` at once, an unknown node or a request already forwarded once is 404 (never sent on),
/// an unauthenticated request goes nowhere, and a session id of an earlier life of this node is lost too.
#[tokio::test]
async fn a_cluster_node_routes_ids_by_their_node_and_never_forwards_twice() {
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = TestApp::new(no_jail(), |c| {
        two_keys(c);
        c.node_id = "n1".into();
        c.cluster.peers.insert("n2".into(), format!("http://{closed}"));
    });
    let hex = "0123456789abcdef0123456789abcdef";
    let started = std::time::Instant::now();
    let lost = app.get(&format!("/sessions/sess_{hex}_n2")).key(KEY_A).send().await;
    let v = lost.expect(410);
    assert_eq!(v["code"], "session_lost", "{v}");
    assert_eq!(
        (v["details"]["node"].as_str(), v["details"]["reason"].as_str()),
        (Some("n2"), Some("node_unreachable"))
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let cell = app
        .post(&format!("/sessions/sess_{hex}_n2/execute"), json!({"code": "1"}))
        .key(KEY_A)
        .send()
        .await;
    assert_eq!(cell.expect(410)["code"], "session_lost");
    app.get(&format!("/sessions/sess_{hex}_n2"))
        .key(KEY_A)
        .header("x-runbox-forwarded-by", "n3")
        .send()
        .await
        .expect_error(404, "not_found");
    app.get(&format!("/sessions/sess_{hex}_n9"))
        .key(KEY_A)
        .send()
        .await
        .expect_error(404, "not_found");
    app.get(&format!("/sessions/sess_{hex}_n2"))
        .send()
        .await
        .expect_error(401, "unauthorized");
    let job = app.get(&format!("/executions/exec_{hex}_n2")).key(KEY_A).send().await;
    assert_eq!(job.expect(503)["code"], "node_unreachable");
    // This node's id with another boot id: a session of an earlier life, which ended with it.
    let earlier = app.get(&format!("/sessions/sess_{hex}_n1")).key(KEY_A).send().await;
    assert_eq!(earlier.expect(410)["details"]["reason"], "node_restarted");
    // A session made here carries this node and this life; it is served here.
    assert!(app.state.cluster.owner_of(&format!("sess_{hex}")) == runbox_server::cluster::Owner::Local);
}
