//! Who may reach what: a keyless server answers only to loopback and configured host names, every route but
//! liveness and the documentation needs a key, and request ids are echoed or made up.

use super::*;

#[tokio::test]
async fn a_keyless_server_answers_only_to_loopback_and_configured_host_names() {
    // A refusal of the Host guard comes before any route: it is not in `openapi.json`.
    async fn with_host(app: &TestApp, method: &str, path: &str, host: &str) -> (u16, Value) {
        let response = app
            .call(method, path)
            .header("host", host)
            .raw(
                "application/json",
                br#"{"language": "bash", "code": "echo 1"}"#.to_vec(),
            )
            .send_undocumented()
            .await;
        (
            response.status.as_u16(),
            serde_json::from_slice(&response.body).unwrap_or(Value::Null),
        )
    }

    let keyless = TestApp::new(no_jail(), |c| c.allowed_hosts = vec!["runbox.lan".into()]);
    for host in [
        "localhost",
        "localhost:8080",
        "127.0.0.1:8080",
        "127.3.2.1",
        "[::1]:9",
        "runbox.lan:1234",
    ] {
        assert_eq!(with_host(&keyless, "GET", "/", host).await.0, 200, "{host}");
    }
    // A page re-pointed at loopback by DNS rebinding sends its own name: refused before anything runs.
    for host in [
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
        "192.168.1.2:8080",
    ] {
        for (method, path) in [("GET", "/"), ("POST", "/execute"), ("GET", "/sessions")] {
            let (status, body) = with_host(&keyless, method, path, host).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (421, Some("host_not_allowed")),
                "{method} {path} {host}"
            );
        }
    }
    // With keys, the key is the defence and any name may be used.
    let keyed = app_with_keys();
    assert_eq!(with_host(&keyed, "GET", "/health", "runbox.example.com").await.0, 200);
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
