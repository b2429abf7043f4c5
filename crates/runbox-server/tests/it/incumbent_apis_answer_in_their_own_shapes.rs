//! The drop-in Judge0 CE (`/judge0`) and Piston v2 (`/api/v2`) routes, for what needs no sandbox: their info
//! routes, their validation and error shapes, tokens, fields, key scoping, `X-Auth-Token`. Nothing here runs
//! code (the jail cannot start, and no worker runs queued submissions); runs through these routes are tested in
//! `crates/runbox/tests/it/api/api_runs_code_in_sandboxes.rs`, and with the real third-party clients in `tests/clients/`.
//! Every response is checked against `openapi.json`.

use runbox_testkit::app as common;

use common::*;
use serde_json::{json, Value};

fn app() -> TestApp {
    TestApp::new(no_jail(), |_| {})
}

fn is_uuid4(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'4'
        && b"89ab".contains(&b[19])
        && s.chars()
            .filter(|c| *c != '-')
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

#[tokio::test]
async fn judge0_info_routes_answer_as_judge0_ce_1_13_1() {
    let app = app();
    let about = app.get("/judge0/about").send().await.expect(200);
    assert_eq!(
        about["version"], "1.13.1",
        "a version the Judge0 SDK has language tables for"
    );
    let version = app.get("/judge0/version").send().await;
    assert_eq!((version.status.as_u16(), version.text()), (200, "1.13.1".to_string()));
    let config = app.get("/judge0/config_info").send().await.expect(200);
    assert_eq!(config.as_object().unwrap().len(), 39, "{config}");
    assert_eq!(config["enable_wait_result"], true);
    let statuses = app.get("/judge0/statuses").send().await.expect(200);
    assert_eq!(statuses.as_array().unwrap().len(), 14);
    assert_eq!(statuses[4], json!({"id": 5, "description": "Time Limit Exceeded"}));

    let languages = app.get("/judge0/languages").send().await.expect(200);
    let python = languages
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == 71)
        .expect("Python is 71");
    assert!(python["name"].as_str().unwrap().starts_with("Python (3."), "{python}");
    assert_eq!(python.as_object().unwrap().len(), 2, "only id and name: {python}");
    let one = app.get("/judge0/languages/71").send().await.expect(200);
    assert_eq!(
        (one["source_file"].as_str(), one["compile_cmd"].as_str()),
        (Some("main.py"), None)
    );
    let c = app.get("/judge0/languages/50").send().await.expect(200);
    assert!(c["compile_cmd"].as_str().is_some_and(|c| c.contains("gcc")), "{c}");
    let all = app.get("/judge0/languages/all").send().await.expect(200);
    assert_eq!(all[0]["is_archived"], false);
    for missing in ["/judge0/languages/9999", "/judge0/languages/abc"] {
        assert!(app.get(missing).send().await.expect(404)["error"].is_string());
    }
}

#[tokio::test]
async fn judge0_submissions_get_uuid4_tokens_and_belong_to_the_key_that_sent_them() {
    let app = TestApp::new(no_jail(), two_keys);
    let body = json!({"source_code": "cHJpbnQoNio3KQ==", "language_id": 71, "memory_limit": 128000.0});
    // Judge0's own header carries the key.
    let created = app
        .post("/judge0/submissions?base64_encoded=true&wait=false", body.clone())
        .header("x-auth-token", KEY_A)
        .send()
        .await
        .expect(201);
    assert_eq!(created.as_object().unwrap().len(), 1, "only the token: {created}");
    let token = created["token"].as_str().unwrap().to_string();
    assert!(is_uuid4(&token), "{token}");

    let path = format!("/judge0/submissions/{token}");
    let record = app.get(&path).header("x-auth-token", KEY_A).send().await.expect(200);
    let mut keys: Vec<&String> = record.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "compile_output",
            "memory",
            "message",
            "status",
            "stderr",
            "stdout",
            "time",
            "token"
        ],
        "Judge0's default fields"
    );
    assert_eq!(record["status"], json!({"id": 1, "description": "In Queue"}));
    let all = app
        .get(&format!("{path}?fields=*&base64_encoded=true"))
        .key(KEY_A)
        .send()
        .await
        .expect(200);
    assert_eq!(all.as_object().unwrap().len(), 35);
    assert_eq!(
        (&all["source_code"], &all["memory_limit"], &all["language"]["id"]),
        (&json!("cHJpbnQoNio3KQ=="), &json!(128000), &json!(71))
    );
    let chosen = app
        .get(&format!("{path}?fields=status_id,token"))
        .key(KEY_A)
        .send()
        .await
        .expect(200);
    assert_eq!(chosen, json!({"status_id": 1, "token": token}));
    let bad = app
        .get(&format!("{path}?fields=stdout,nope,zilch"))
        .key(KEY_A)
        .send()
        .await
        .expect(400);
    assert_eq!(bad["error"], "invalid fields: [nope, zilch]");

    // Another key does not see it, nobody without a key does, and a queued submission cannot be deleted.
    assert!(app.get(&path).header("x-auth-token", KEY_B).send().await.expect(404)["error"].is_string());
    assert!(app.get(&path).send().await.expect(401)["error"].is_string());
    assert!(app.get(&path).header("x-auth-token", "wrong").send().await.expect(401)["error"].is_string());
    let refused = app.delete(&path).key(KEY_A).send().await.expect(400);
    assert_eq!(
        refused["error"],
        "submission cannot be deleted because its status is 1 (In Queue)"
    );
    // runbox's own view of the same execution, under the same id.
    let own = app
        .get(&format!("/executions/{token}"))
        .key(KEY_A)
        .send()
        .await
        .expect(200);
    assert_eq!(own["status"], "queued");
}

#[tokio::test]
async fn judge0_refusals_are_field_lists_and_error_messages() {
    let app = app();
    // A boolean flag that is neither true nor false is refused rather than silently taken as false.
    for query in ["wait=maybe", "base64_encoded=null"] {
        let e = app
            .post(
                &format!("/judge0/submissions?{query}"),
                json!({"source_code": "x", "language_id": 71}),
            )
            .send()
            .await
            .expect(400);
        assert!(e["error"].as_str().unwrap().contains("must be true or false"), "{e}");
    }
    let e = app.post("/judge0/submissions", json!({})).send().await.expect(422);
    assert_eq!(
        e,
        json!({"source_code": ["can't be blank"], "language_id": ["can't be blank"]})
    );
    let e = app
        .post("/judge0/submissions", json!({"source_code": "x", "language_id": 4242}))
        .send()
        .await
        .expect(422);
    assert_eq!(e["language_id"], json!(["language with id 4242 doesn't exist"]));
    let e = app
        .post(
            "/judge0/submissions",
            json!({"source_code": "x", "language_id": 71, "enable_network": true, "wall_time_limit": 100000}),
        )
        .send()
        .await
        .expect(422);
    assert_eq!(e["enable_network"], json!(["enabling network is not allowed"]));
    assert!(e["wall_time_limit"][0]
        .as_str()
        .unwrap()
        .starts_with("must be less than or equal to"));
    // JSON is read whatever the content type, as Rails does; malformed JSON is a 400 with an error.
    let e = app
        .call("POST", "/judge0/submissions")
        .raw("text/plain", b"{nope".to_vec())
        .send()
        .await
        .expect(400);
    assert!(e["error"].as_str().unwrap().contains("JSON"), "{e}");

    // Batches: one entry per submission, a token or that entry's errors.
    let batch = app
        .post(
            "/judge0/submissions/batch",
            json!({"submissions": [{"source_code": "print(1)", "language_id": 71}, {"language_id": 71}]}),
        )
        .send()
        .await
        .expect(201);
    let token = batch[0]["token"].as_str().unwrap().to_string();
    assert_eq!(batch[1], json!({"source_code": ["can't be blank"]}));
    let none_valid = app
        .post("/judge0/submissions/batch", json!({"submissions": [{}]}))
        .send()
        .await
        .expect(422);
    assert!(none_valid[0]["language_id"].is_array());
    let empty = app
        .post("/judge0/submissions/batch", json!({"submissions": []}))
        .send()
        .await
        .expect(400);
    assert_eq!(empty["error"], "there should be at least one submission in a batch");
    let many: Vec<Value> = (0..21)
        .map(|_| json!({"source_code": "1", "language_id": 71}))
        .collect();
    let over = app
        .post("/judge0/submissions/batch", json!({"submissions": many}))
        .send()
        .await
        .expect(400);
    assert_eq!(
        over["error"],
        "number of submissions in a batch should be less than or equal to 20"
    );
    let got = app
        .get(&format!(
            "/judge0/submissions/batch?tokens={token},00000000-0000-4000-8000-000000000000&fields=status_id"
        ))
        .send()
        .await
        .expect(200);
    assert_eq!(got, json!({"submissions": [{"status_id": 1}, null]}));
    assert!(app.get("/judge0/submissions/batch").send().await.expect(400)["error"].is_string());
}

#[tokio::test]
async fn piston_refusals_are_400_messages() {
    let app = app();
    let runtimes = app.get("/api/v2/runtimes").send().await.expect(200);
    let python = runtimes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["language"] == "python")
        .unwrap();
    assert!(python["aliases"].as_array().unwrap().contains(&json!("py")), "{python}");
    assert!(python["version"].as_str().unwrap().starts_with("3."), "{python}");

    let cases = [
        (
            json!({"language": "cobol", "version": "*", "files": [{"content": "x"}]}),
            "cobol-* runtime is unknown",
        ),
        (
            json!({"language": "python", "version": "2.7.0", "files": [{"content": "x"}]}),
            "python-2.7.0 runtime is unknown",
        ),
        (json!({"version": "*", "files": []}), "language is required as a string"),
        (json!({"language": "python"}), "files is required as an array"),
        (
            json!({"language": "python", "files": [{"name": "a.py"}]}),
            "files[0].content is required as a string",
        ),
        (
            json!({"language": "python", "files": [{"content": "1"}], "run_timeout": -7}),
            "run_timeout must be non-negative",
        ),
    ];
    for (body, message) in cases {
        let e = app.post("/api/v2/execute", body.clone()).send().await.expect(400);
        assert_eq!(e, json!({ "message": message }), "{body}");
    }
    let e = app
        .call("POST", "/api/v2/execute")
        .raw("text/plain", b"not json".to_vec())
        .send()
        .await
        .expect(400);
    assert!(e["message"].as_str().unwrap().contains("JSON"), "{e}");
    // JSON sent with a form content type (as `curl -d` sends it) is read as JSON.
    let e = app
        .call("POST", "/api/v2/execute")
        .raw(
            "application/x-www-form-urlencoded",
            br#"{"language": "cobol", "files": [{"content": "x"}]}"#.to_vec(),
        )
        .send()
        .await
        .expect(400);
    assert_eq!(e["message"], "cobol-* runtime is unknown");

    let keyed = TestApp::new(no_jail(), two_keys);
    let e = keyed.get("/api/v2/runtimes").send().await.expect(401);
    assert!(e["message"].is_string(), "{e}");
    keyed.get("/api/v2/runtimes").key(KEY_A).send().await.expect(200);
}
