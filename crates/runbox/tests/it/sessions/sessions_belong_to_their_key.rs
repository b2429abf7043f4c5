//! Sessions belong to the API key that created them: another key sees 404 for every route of the session and
//! lists only its own; and how many sessions a key, and the server, may hold at once (429 `too_many_sessions`).

use crate::session_support;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_caps_are_in_the_parent_cgroup_and_a_key_past_its_share_is_refused() {
    use runbox_sandbox::cgroup::{detect, CgroupVersion};
    let parent = format!("runbox-test-{}", unique_mark());
    let api = Api::with_two_keys(|c| {
        c.aggregate.cgroup_parent = parent.clone();
        c.aggregate.memory_mb = 3000;
        c.aggregate.processes = 1500;
        c.aggregate.key_memory_mb = 600;
        c.aggregate.key_processes = 200;
    });
    // The kernel holds the caps of all of runbox, in the parent of every sandbox's cgroup.
    let version = api.state.protections.as_ref().ok().and_then(|p| p.cgroup);
    let host = detect();
    let files = match version {
        Some(CgroupVersion::V1) => vec![
            (
                host.v1_memory
                    .clone()
                    .unwrap()
                    .join(&parent)
                    .join("memory.limit_in_bytes"),
                3000u64 << 20,
            ),
            (host.v1_pids.clone().unwrap().join(&parent).join("pids.max"), 1500),
        ],
        Some(CgroupVersion::V2) => {
            let dir = host.v2_mount.clone().unwrap().join(&parent);
            vec![(dir.join("memory.max"), 3000u64 << 20), (dir.join("pids.max"), 1500)]
        }
        None => {
            eprintln!("skipped the cgroup files: this host runs without cgroups");
            Vec::new()
        }
    };
    for (file, want) in &files {
        let got = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(got.trim(), want.to_string(), "{}", file.display());
    }

    // Key a reserves 512 of its 600 MiB with one session; a second one of 128 MiB is refused, clearly.
    let (big, _) = api
        .create_marked(Some(KEY_A), json!({"language": "bash", "limits": {"memory_mb": 512}}))
        .await;
    if let Some((file, _)) = files.last() {
        let groups = std::fs::read_dir(file.parent().unwrap()).unwrap().flatten();
        assert!(
            groups.filter(|e| e.path().is_dir()).count() > 0,
            "the session's sandbox is under the capped parent"
        );
    }
    let refused = api
        .post("/sessions", json!({"language": "bash", "limits": {"memory_mb": 128}}))
        .send()
        .await
        .expect_error(429, "key_capacity_exceeded");
    assert!(refused["message"].as_str().unwrap().contains("600 MiB"), "{refused}");
    // Runs count too: memory past the key's share, or processes past it, are refused; within it, a run runs.
    let run = |limits: serde_json::Value| json!({"language": "bash", "code": "echo ran", "limits": limits});
    api.post("/execute", run(json!({"memory_mb": 128})))
        .send()
        .await
        .expect_error(429, "key_capacity_exceeded");
    api.post("/execute", run(json!({"memory_mb": 64, "processes": 150})))
        .send()
        .await
        .expect_error(429, "key_capacity_exceeded");
    let ok = api
        .post("/execute", run(json!({"memory_mb": 64, "processes": 16})))
        .send()
        .await
        .expect(200);
    assert_eq!(ok["stdout"], "ran\n", "{ok}");
    // Another key has its own share.
    api.create_marked(Some(KEY_B), json!({"language": "bash", "limits": {"memory_mb": 512}}))
        .await;
    // Ending the session returns its share.
    let r = api.delete(&format!("/sessions/{big}")).send().await;
    assert_eq!(r.status, 204, "{}", r.text());
    api.create_marked(Some(KEY_A), json!({"language": "bash", "limits": {"memory_mb": 128}}))
        .await;

    api.state.sessions.close_all();
    drop(api);
    let cpuacct = host.v1_cpuacct.clone().map(|root| root.join(&parent).join("x"));
    for file in files.into_iter().map(|(f, _)| f).chain(cpuacct) {
        let dir = file.parent().unwrap().to_path_buf();
        for _ in 0..100 {
            if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn a_server_whose_aggregate_caps_cannot_be_applied_does_not_start() {
    let probe = runbox_sandbox::probe::decide(&runbox_sandbox::probe::host(), &Default::default());
    if !probe.is_ok_and(|p| p.cgroup.is_some()) {
        eprintln!("skipped: this host runs without cgroups");
        return;
    }
    // A parent whose last step is a file of the cgroup filesystem cannot hold the caps.
    let group = format!("runbox-test-{}", unique_mark());
    let dir = tempfile::tempdir().unwrap();
    let config = runbox_server::ServerConfig {
        data_dir: dir.path().to_path_buf(),
        aggregate: runbox_engine::ledger::AggregateLimits {
            cgroup_parent: format!("{group}/cgroup.procs"),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = runbox_server::build_state(config, jail())
        .err()
        .expect("the server refuses to start");
    assert!(err.contains("aggregate"), "{err}");
    let host = runbox_sandbox::cgroup::detect();
    for root in host.hierarchies() {
        let _ = std::fs::remove_dir(root.join(&group));
    }
}
