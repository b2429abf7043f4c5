//! Bad requests are refused with the documented status and a JSON `{code, message}`: malformed or non-JSON
//! bodies, bodies over the limit, invalid fields (named), unknown routes and executions, wrong methods.

use super::*;

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
