//! `/mcp` takes the same keys, origin rule and keyless Host guard as every other route.

use super::*;

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
