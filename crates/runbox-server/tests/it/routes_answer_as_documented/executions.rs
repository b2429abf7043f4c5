//! Async executions belong to the key that submitted them: another key can neither see nor cancel them.

use super::*;

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
