//! Sessions belong to the API key that created them: another key sees 404 for every route of the session and
//! lists only its own; and how many sessions a key, and the server, may hold at once (429 `too_many_sessions`).

mod session_support;

use serde_json::json;
use session_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_key_cannot_see_or_touch_a_session() {
    let api = Api::with_two_keys(|_| {});
    let (mine, mark) = api.create_marked(Some(KEY_A), json!({"language": "python"})).await;
    let (theirs, _) = api.create_marked(Some(KEY_B), json!({"language": "python"})).await;
    api.exec_ok(&mine, "secret = 'a'").await;
    api.put(&format!("/sessions/{mine}/files/private.txt"), b"a's".to_vec())
        .send()
        .await
        .expect(201);

    let s = format!("/sessions/{mine}");
    for r in [
        api.get(&s).key(KEY_B).send().await,
        api.post(&format!("{s}/execute"), json!({"code": "secret"}))
            .key(KEY_B)
            .send()
            .await,
        api.post(&format!("{s}/execute/stream"), json!({"code": "secret"}))
            .key(KEY_B)
            .send()
            .await,
        api.post(&format!("{s}/interrupt"), json!({})).key(KEY_B).send().await,
        api.get(&format!("{s}/files")).key(KEY_B).send().await,
        api.get(&format!("{s}/files/private.txt")).key(KEY_B).send().await,
        api.put(&format!("{s}/files/planted.txt"), b"b's".to_vec())
            .key(KEY_B)
            .send()
            .await,
        api.delete(&format!("{s}/files/private.txt")).key(KEY_B).send().await,
        api.delete(&s).key(KEY_B).send().await,
    ] {
        r.expect_error(404, "not_found");
    }
    // A 404 for someone else's session says exactly what a 404 for a session that never existed says.
    let unknown = api
        .get("/sessions/sess_00000000000000000000000000000000")
        .key(KEY_B)
        .send()
        .await;
    assert_eq!(unknown.json(), api.get(&s).key(KEY_B).send().await.json());

    // Each key lists only its own.
    let a_list = api.get("/sessions").key(KEY_A).send().await.expect(200);
    let b_list = api.get("/sessions").key(KEY_B).send().await.expect(200);
    let ids = |l: &serde_json::Value| -> Vec<String> {
        l.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&a_list), vec![mine.clone()]);
    assert_eq!(ids(&b_list), vec![theirs.clone()]);

    // Nothing the other key did reached the session.
    let r = api
        .exec_ok(
            &mine,
            "import os\n(secret, os.path.exists('planted.txt'), open('private.txt').read())",
        )
        .await;
    assert_eq!(r["result"]["text/plain"], "('a', False, \"a's\")", "{r}");
    assert_eq!(api.info(&mine).await["state"], "idle");
    assert!(!processes_with_mark(&mark).is_empty());

    // Without a key, or with a wrong one: 401.
    let r = api.call("GET", &s).key("not-a-key-0123456789").send().await;
    r.expect_error(401, "unauthorized");
    api.get("/sessions")
        .without_key()
        .send()
        .await
        .expect_error(401, "unauthorized");
    api.get(&s).without_key().send().await.expect_error(401, "unauthorized");

    // The owner deletes it.
    api.delete(&s).key(KEY_A).send().await.expect_bytes(204);
    wait_processes_gone(&mark, 10).await;
    api.delete(&format!("/sessions/{theirs}"))
        .key(KEY_B)
        .send()
        .await
        .expect_bytes(204);
}

#[test]
fn two_keys_sharing_a_name_never_get_a_server_to_share_sessions_in() {
    // A session belongs to its key's name: a second key with that name (here the `default` that RUNBOX_API_KEY
    // gets) would run code in the first key's sessions, so such a configuration never starts.
    let dir = tempfile::tempdir().unwrap();
    let config = runbox_server::ServerConfig {
        data_dir: dir.path().to_path_buf(),
        api_key: Some(KEY_B.into()),
        api_keys: vec![key("default", KEY_A)],
        ..Default::default()
    };
    let err = match runbox_server::build_state(config, jail()) {
        Ok(_) => panic!("a server started with two keys named default"),
        Err(e) => e,
    };
    assert!(err.contains("\"default\"") && err.contains("two keys"), "{err}");
    assert!(!err.contains(KEY_A) && !err.contains(KEY_B), "a key leaked into {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_limited_per_key_and_in_total() {
    let api = Api::with_two_keys(|c| {
        c.sessions.max_per_owner = 2;
        c.sessions.max_total = 3;
    });
    let a1 = api.create_marked(Some(KEY_A), json!({"language": "bash"})).await.0;
    let _a2 = api.create_marked(Some(KEY_A), json!({"language": "bash"})).await.0;
    let r = api
        .post("/sessions", json!({"language": "bash"}))
        .key(KEY_A)
        .send()
        .await;
    let body = r.expect_error(429, "too_many_sessions");
    assert!(body["message"].as_str().unwrap().contains("key"), "{body}");
    assert!(r.header("retry-after").is_some(), "a 429 says when to retry");

    // Key b has room of its own, until the server is full.
    let b1 = api.create_marked(Some(KEY_B), json!({"language": "bash"})).await.0;
    let r = api
        .post("/sessions", json!({"language": "bash"}))
        .key(KEY_B)
        .send()
        .await;
    let body = r.expect_error(429, "too_many_sessions");
    assert!(body["message"].as_str().unwrap().contains("server"), "{body}");

    // A dead session does not count: ending one frees its place.
    api.exec(&a1, "exit").await;
    let b2 = api.create_marked(Some(KEY_B), json!({"language": "bash"})).await.0;
    api.delete(&format!("/sessions/{b1}"))
        .key(KEY_B)
        .send()
        .await
        .expect_bytes(204);
    api.delete(&format!("/sessions/{b2}"))
        .key(KEY_B)
        .send()
        .await
        .expect_bytes(204);
    let a3 = api.create_marked(Some(KEY_A), json!({"language": "bash"})).await.0;
    api.exec_ok(&a3, "echo ok").await;
    assert_eq!(api.state.sessions.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_never_exceed_the_per_key_cap() {
    // The cap used to be checked before the sandbox started and filled after: racing creations all passed.
    let api = Api::with_two_keys(|c| c.sessions.max_per_owner = 2);
    let mark = unique_mark();
    let creators: Vec<_> = (0..8)
        .map(|_| {
            let call = api.post("/sessions", json!({"language": "bash", "env": {MARK_VAR: mark}}));
            tokio::spawn(call.key(KEY_A).send())
        })
        .collect();
    let mut created = Vec::new();
    for creator in creators {
        let r = creator.await.unwrap();
        if r.status == 201 {
            created.push(r.json()["id"].as_str().unwrap().to_string());
        } else {
            r.expect_error(429, "too_many_sessions");
        }
    }
    assert_eq!(created.len(), 2, "sessions created against a cap of 2: {created:?}");
    assert_eq!(api.state.sessions.count(), 2);
    // Refused creations hold no place: once one session ends, the key may start another.
    api.delete(&format!("/sessions/{}", created[0]))
        .send()
        .await
        .expect_bytes(204);
    let (again, _) = api.create_marked(Some(KEY_A), json!({"language": "bash"})).await;
    for id in [&created[1], &again] {
        api.delete(&format!("/sessions/{id}")).send().await.expect_bytes(204);
    }
    wait_processes_gone(&mark, 10).await;
}
