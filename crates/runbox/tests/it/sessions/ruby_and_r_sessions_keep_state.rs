//! Ruby and R sessions: state persists between cells, the trailing value is the result, errors come back with
//! name and message, and an interrupt stops a busy loop while the session and its variables survive.

use crate::session_support;

use session_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruby_keeps_locals_and_methods() {
    let api = Api::plain();
    let id = api.create("ruby").await;
    api.exec_ok(&id, "x = 41\ndef bump(v) = v + 1").await;
    let r = api.exec_ok(&id, "puts 'hi'\nsystem('echo sub')\nbump(x)").await;
    assert_eq!(
        (r["stdout"].as_str(), r["result"]["text/plain"].as_str()),
        (Some("hi\nsub\n"), Some("42")),
        "{r}"
    );
    let r = api.exec(&id, "nil.foo").await;
    assert_eq!(
        (r["status"].as_str(), r["error"]["name"].as_str()),
        (Some("error"), Some("NoMethodError")),
        "{r}"
    );
    let r = api
        .exec_body(&id, serde_json::json!({"code": "loop {}", "timeout_ms": 1000}))
        .await
        .json();
    assert_eq!(r["status"], "timeout", "{r}");
    let r = api.exec_ok(&id, "x").await;
    assert_eq!(r["result"]["text/plain"], "41", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_keeps_its_global_environment() {
    let api = Api::plain();
    let id = api.create("r").await;
    api.exec_ok(&id, "x <- 41\nbump <- function(v) v + 1").await;
    let r = api.exec_ok(&id, "cat('hi\\n')\nbump(x)").await;
    assert_eq!(
        (r["stdout"].as_str(), r["result"]["text/plain"].as_str()),
        (Some("hi\n"), Some("[1] 42")),
        "{r}"
    );
    let r = api.exec(&id, "stop('bad thing')").await;
    assert_eq!(
        (r["status"].as_str(), r["error"]["value"].as_str()),
        (Some("error"), Some("bad thing")),
        "{r}"
    );
    let r = api
        .exec_body(&id, serde_json::json!({"code": "while (TRUE) {}", "timeout_ms": 1000}))
        .await
        .json();
    assert_eq!(r["status"], "timeout", "{r}");
    let r = api.exec_ok(&id, "x").await;
    assert_eq!(r["result"]["text/plain"], "[1] 41", "{r}");
}
