//! Three `runbox serve` nodes (127.0.0.2–127.0.0.4) behind nginx running `deploy/nginx/runbox.conf`, round robin,
//! used only through the front door, as a client of a cluster would: stateless runs spread over every node; a
//! session keeps its state whichever node each request lands on (cells, a stream, a WebSocket cell, files, an
//! interrupt); a node killed with -9 costs no stateless run, its sessions answer `410 session_lost` within a
//! second and the others' sessions go on; a rolling restart under a steady stream of runs fails none of them.
//! The nodes keep their async executions in one PostgreSQL database (`database_url`), as a cluster does: a job
//! submitted through the front door finishes even when the node running it is killed with -9.
//!
//! The nodes are expensive to start on a small machine, so one test walks through the phases in order; each phase
//! is a function named after what it proves.

use super::{cluster_support, postgres_support};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::{within, Cluster, KEY};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_behind_nginx_spreads_runs_keeps_sessions_loses_only_a_dead_nodes_sessions_and_restarts_without_failures(
) {
    // The shared job store (under CI=true a missing PostgreSQL fails here).
    let Some(pg) = postgres_support::start() else { return };
    // Small nodes: no warm pools (three servers share two cores), one warm Python session each.
    // A node keeps serving for a second after SIGTERM, unready, before it drains (cluster.drain_delay_ms).
    // A job's lease is short, so that a killed node's job moves on within seconds.
    let mut cluster = Cluster::start_with_env(
        3,
        &[
            "pools.enabled=false",
            "shutdown_grace_ms=10000",
            "cluster.drain_delay_ms=1000",
            "async_lease_ms=3000",
        ],
        &[("RUNBOX_DATABASE_URL", &pg.url)],
    );
    stateless_runs_spread_over_every_node(&cluster).await;
    a_session_keeps_its_state_through_the_front_door(&cluster).await;
    an_async_execution_is_answered_by_every_node(&cluster).await;
    let lost = a_killed_node_loses_only_its_own_sessions(&mut cluster).await;
    cluster.node_mut("n2").start();
    // Back on its data directory, the node knows the session is from a life that ended without draining.
    let r = cluster
        .post(&format!("/sessions/{lost}/execute"), json!({"code": "1"}))
        .await;
    assert_eq!(
        (r.status, r.json()["details"]["reason"].clone()),
        (410, json!("node_restarted")),
        "{}",
        r.text()
    );
    a_rolling_restart_fails_no_stateless_run(&mut cluster).await;
    // Last: the front door stops sending to a node it could not reach for a while, which would skew the phases
    // above that count on round robin.
    an_async_job_outlives_the_node_running_it(&mut cluster, &pg).await;
}

async fn run_python(cluster: &Cluster, code: &str) -> cluster_support::Reply {
    cluster
        .post("/execute", json!({"language": "python", "code": code}))
        .await
}

async fn stateless_runs_spread_over_every_node(cluster: &Cluster) {
    let mut before = Vec::new();
    for n in NODES {
        before.push(cluster.executions_on(n).await);
    }
    for i in 0..12 {
        let r = run_python(cluster, &format!("print({i} * 2)")).await;
        let v = r.expect(200);
        assert_eq!(v["stdout"], format!("{}\n", i * 2), "{v}");
    }
    for (n, before) in NODES.iter().zip(before) {
        let after = cluster.executions_on(n).await;
        assert!(
            after > before,
            "node {n} ran none of the 12 runs (round robin)\n{}",
            cluster.logs()
        );
    }
}

async fn a_session_keeps_its_state_through_the_front_door(cluster: &Cluster) {
    let created = cluster
        .post("/sessions", json!({"language": "python"}))
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap().to_string();
    let owner = Cluster::owner_of(&id);
    assert!(NODES.contains(&owner.as_str()), "the session id names its node: {id}");
    let cell = |code: &str| json!({ "code": code });
    cluster
        .post(&format!("/sessions/{id}/execute"), cell("x = 0"))
        .await
        .expect(200);

    // 50 cells: plain, streamed (SSE) and over a WebSocket, each landing on whichever node nginx picks.
    let mut ws = FrontSocket::connect(&cluster.front.base).await;
    for i in 1..=50 {
        let code = "x += 1\nprint('cell', x)\nx";
        let text = match i % 10 {
            0 => {
                let r = cluster
                    .post(&format!("/sessions/{id}/execute/stream"), cell(code))
                    .await;
                assert_eq!(r.status, 200, "{}", r.text());
                let body = r.text();
                assert!(
                    body.contains(&format!("cell {i}")),
                    "the stream carried the output: {body}"
                );
                let result = body
                    .split("event: result\ndata: ")
                    .nth(1)
                    .and_then(|rest| rest.lines().next())
                    .unwrap_or_else(|| panic!("no result event in {body}"));
                serde_json::from_str::<Value>(result).unwrap()["result"]["text/plain"].clone()
            }
            5 => {
                let m = ws.cell(&format!("c{i}"), &id, code).await;
                assert_eq!(m["type"], "result", "{m}\n{}", cluster.logs());
                m["result"]["result"]["text/plain"].clone()
            }
            _ => {
                let r = cluster
                    .post(&format!("/sessions/{id}/execute"), cell(code))
                    .await
                    .expect(200);
                assert_eq!(r["status"], "ok", "{r}");
                r["result"]["text/plain"].clone()
            }
        };
        assert_eq!(
            text,
            json!(i.to_string()),
            "cell {i} saw the state of the cells before it"
        );
    }

    // Files: upload, read in a cell, write in a cell, download, list — through the front door.
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let up = cluster
        .call_at(
            &cluster.front.base,
            "PUT",
            &format!("/sessions/{id}/files/data/in.bin"),
            Some(payload.clone().into()),
            false,
        )
        .await;
    assert!(
        up.status == 200 || up.status == 201 || up.status == 204,
        "upload: {} {}",
        up.status,
        up.text()
    );
    let r = cluster
        .post(
            &format!("/sessions/{id}/execute"),
            cell("b = open('data/in.bin','rb').read()\nopen('out.txt','w').write(str(len(b)))\nlen(b)"),
        )
        .await
        .expect(200);
    assert_eq!(r["result"]["text/plain"], "200000", "{r}");
    let down = cluster
        .call_at(
            &cluster.front.base,
            "GET",
            &format!("/sessions/{id}/files/data/in.bin"),
            None,
            false,
        )
        .await;
    assert_eq!(down.status, 200);
    assert!(down.body == payload, "the download is the upload, byte for byte");
    let out = cluster.get(&format!("/sessions/{id}/files/out.txt")).await;
    assert_eq!((out.status, out.text()), (200, "200000".to_string()));
    let listing = cluster
        .get(&format!("/sessions/{id}/files?path=data"))
        .await
        .expect(200);
    assert!(listing.to_string().contains("in.bin"), "{listing}");

    // An interrupt through the front door reaches the cell, wherever each of the two requests lands.
    let long = {
        let (front, path) = (cluster.front.base.clone(), format!("/sessions/{id}/execute"));
        let client = cluster.client.clone();
        tokio::spawn(async move {
            let r = client
                .post(format!("{front}{path}"))
                .bearer_auth(KEY)
                .json(&json!({"code": "import time\nwhile True: time.sleep(0.05)"}))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        })
    };
    within(10, "the long cell to start", async {
        while cluster.get(&format!("/sessions/{id}")).await.json()["state"] != "busy" {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    cluster
        .post(&format!("/sessions/{id}/interrupt"), json!({}))
        .await
        .expect(200);
    let r = within(15, "the interrupted cell", long).await.unwrap();
    assert_eq!(r["status"], "interrupted", "{r}");

    // Every node answers for the session directly too (two of them by forwarding), and the state is one.
    for n in NODES {
        let base = cluster.node(n).base();
        let r = cluster
            .call_at(
                &base,
                "POST",
                &format!("/sessions/{id}/execute"),
                Some(cell("x").to_string().into()),
                true,
            )
            .await
            .expect(200);
        assert_eq!(r["result"]["text/plain"], "50", "through {n}: {r}");
    }
    // A WebSocket cell on a node that does not hold the session runs on the owner.
    let other = NODES.iter().find(|n| **n != owner).unwrap();
    let mut direct = FrontSocket::connect(&cluster.node(other).base()).await;
    let m = direct.cell("direct", &id, "x * 2").await;
    assert_eq!(
        m["result"]["result"]["text/plain"], "100",
        "a cell through {other}'s socket: {m}"
    );
    direct.close().await;
    let info = cluster.get(&format!("/sessions/{id}")).await.expect(200);
    assert_eq!(info["id"], id.as_str());
    cluster
        .call("DELETE", &format!("/sessions/{id}"), None)
        .await
        .expect(204);
    let gone = cluster.get(&format!("/sessions/{id}")).await;
    assert_eq!(gone.status, 404, "{}", gone.text());
    ws.close().await;
}

/// An async execution submitted through the front door is read through every node: from the shared store here
/// (with each node's own SQLite, a node forwards the request to the node the id names).
async fn an_async_execution_is_answered_by_every_node(cluster: &Cluster) {
    let submitted = cluster
        .post("/executions", json!({"language": "python", "code": "print(6 * 7)"}))
        .await
        .expect(202);
    let id = submitted["id"].as_str().unwrap().to_string();
    assert!(
        NODES.contains(&Cluster::owner_of(&id).as_str()),
        "the execution id names its node: {id}"
    );
    for n in NODES {
        let base = cluster.node(n).base();
        let view = within(30, "the async execution", async {
            loop {
                let view = cluster
                    .call_at(&base, "GET", &format!("/executions/{id}"), None, false)
                    .await
                    .expect(200);
                if view["status"] == "done" {
                    break view;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert_eq!(view["result"]["stdout"], "42\n", "through {n}: {view}");
    }
    cluster.call("DELETE", &format!("/executions/{id}"), None).await;
}

/// Polls an execution through the front door until `done` holds.
async fn poll_execution(cluster: &Cluster, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    within(secs, &format!("execution {id}"), async {
        loop {
            let view = cluster.get(&format!("/executions/{id}")).await.expect(200);
            if done(&view) {
                break view;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

/// A job submitted through the front door runs on some node; that node is killed with -9 mid-run; another node
/// takes the job once its lease runs out and finishes it (started twice in all, by the database's count), and the
/// result is read through the front door, which skips the dead node.
async fn an_async_job_outlives_the_node_running_it(cluster: &mut Cluster, pg: &postgres_support::Postgres) {
    let marker = format!("runbox-cluster-failover-{}", std::process::id());
    let body = json!({"language": "bash", "timeout_ms": 60000,
                      "code": format!("exec -a {marker} bash -c 'sleep 4; echo finished'")});
    let submitted = cluster.post("/executions", body).await.expect(202);
    let id = submitted["id"].as_str().unwrap().to_string();
    poll_execution(cluster, &id, 30, |v| v["status"] == "running").await;
    let first = pg.psql(&format!("SELECT node FROM runbox_jobs WHERE id = '{id}'"));
    assert!(NODES.contains(&first.as_str()), "the job's node: {first:?}");
    cluster.node_mut(&first).kill9();
    let view = poll_execution(cluster, &id, 60, |v| v["status"] == "done").await;
    assert_eq!(view["result"]["stdout"], "finished\n", "{view}");
    let row = pg.psql(&format!(
        "SELECT node || ' ' || attempts FROM runbox_jobs WHERE id = '{id}'"
    ));
    let (second, attempts) = row.split_once(' ').unwrap_or_else(|| panic!("{row:?}"));
    assert_ne!(second, first, "finished on another node");
    assert_eq!(attempts, "2", "started on the killed node, then once more");
}

/// Returns the id of a session the killed node held.
async fn a_killed_node_loses_only_its_own_sessions(cluster: &mut Cluster) -> String {
    // Sessions until every node holds at least one (round robin makes that quick).
    let mut sessions: Vec<(String, String)> = Vec::new();
    for _ in 0..12 {
        let created = cluster
            .post("/sessions", json!({"language": "python"}))
            .await
            .expect(201);
        let id = created["id"].as_str().unwrap().to_string();
        let owner = Cluster::owner_of(&id);
        cluster
            .post(
                &format!("/sessions/{id}/execute"),
                json!({"code": format!("mine = '{owner}'")}),
            )
            .await
            .expect(200);
        sessions.push((id, owner));
        if NODES.iter().all(|n| sessions.iter().any(|(_, o)| o == n)) {
            break;
        }
    }
    let victim = "n2";
    assert!(
        sessions.iter().any(|(_, o)| o == victim),
        "no session on {victim}: {sessions:?}"
    );
    // The listing through any node holds the caller's sessions of every node; without the dead one's, at once.
    let listed = |r: &cluster_support::Reply| -> Vec<String> {
        let v = r.expect(200);
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let before = cluster.get("/sessions").await;
    let ids = listed(&before);
    assert!(
        sessions.iter().all(|(id, _)| ids.contains(id)),
        "{ids:?} lists {sessions:?}"
    );
    cluster.node_mut(victim).kill9();
    for n in NODES.iter().filter(|n| **n != victim) {
        let r = cluster
            .call_at(&cluster.node(n).base(), "GET", "/sessions", None, false)
            .await;
        let ids = listed(&r);
        assert!(
            sessions.iter().all(|(id, o)| ids.contains(id) == (o != victim)),
            "{n} lists the live nodes' sessions only: {ids:?} of {sessions:?}"
        );
        assert!(
            r.elapsed < Duration::from_secs(1),
            "listing through {n} took {:?}",
            r.elapsed
        );
    }
    for i in 0..9 {
        let r = run_python(cluster, &format!("print({i})")).await;
        assert_eq!(
            r.status,
            200,
            "stateless run {i} after {victim} died: {}\n{}",
            r.text(),
            cluster.logs()
        );
    }
    for (id, owner) in &sessions {
        if owner == victim {
            // A WebSocket cell for it, on a socket through the front door (a live node), ends in the same answer.
            let mut ws = FrontSocket::connect(&cluster.front.base).await;
            let started = Instant::now();
            let m = ws.cell("lost", id, "mine").await;
            assert_eq!(
                (m["type"].as_str(), m["code"].as_str()),
                (Some("error"), Some("session_lost")),
                "{m}"
            );
            assert_eq!(m["details"]["node"], victim, "{m}");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "the socket's answer took {:?}",
                started.elapsed()
            );
            ws.close().await;
            for (method, path, body) in [
                ("POST", format!("/sessions/{id}/execute"), Some(json!({"code": "mine"}))),
                ("GET", format!("/sessions/{id}"), None),
                ("GET", format!("/sessions/{id}/files?path=."), None),
            ] {
                let r = cluster.call(method, &path, body).await;
                let v = r.json();
                assert_eq!(r.status, 410, "{method} {path}: {}", r.text());
                assert_eq!(v["code"], "session_lost", "{v}");
                assert_eq!(v["details"]["node"], victim, "{v}");
                assert!(
                    r.elapsed < Duration::from_secs(1),
                    "{method} {path} took {:?}",
                    r.elapsed
                );
                eprintln!("{method} {path} on the dead {victim}: 410 in {:?}", r.elapsed);
            }
        } else {
            let r = cluster
                .post(&format!("/sessions/{id}/execute"), json!({"code": "mine"}))
                .await
                .expect(200);
            assert_eq!(r["result"]["text/plain"], format!("'{owner}'"), "{r}");
        }
    }
    for (id, owner) in &sessions {
        if owner != victim {
            cluster
                .call("DELETE", &format!("/sessions/{id}"), None)
                .await
                .expect(204);
        }
    }
    sessions.into_iter().find(|(_, o)| o == victim).unwrap().0
}

async fn a_rolling_restart_fails_no_stateless_run(cluster: &mut Cluster) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // A steady stream: two clients back to back, at most 3000 runs and 240 s in all.
    let mut load = Vec::new();
    for c in 0..2 {
        let (front, client) = (cluster.front.base.clone(), cluster.client.clone());
        let (stop, ok, failed, failures) = (stop.clone(), ok.clone(), failed.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 1500 && started.elapsed() < Duration::from_secs(240) {
                i += 1;
                let answer = client
                    .post(format!("{front}/execute"))
                    .bearer_auth(KEY)
                    .json(&json!({"language": "python", "code": format!("print({c}, {i})")}))
                    .send()
                    .await;
                let outcome = match answer {
                    Ok(a) => {
                        let status = a.status().as_u16();
                        let body: Value = a.json().await.unwrap_or(Value::Null);
                        if status == 200 && body["stdout"] == format!("{c} {i}\n") {
                            Ok(())
                        } else {
                            Err(format!("{status} {body}"))
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failures.lock().unwrap().push(e);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut drained = Vec::new();
    for n in NODES {
        // A session on the node about to restart: its client learns that the node drained.
        let base = cluster.node(n).base();
        let body = Some(json!({"language": "python"}).to_string().into());
        let created = cluster
            .call_at(&base, "POST", "/sessions", body, true)
            .await
            .expect(201);
        drained.push((created["id"].as_str().unwrap().to_string(), n));
        // Unready at once, alive throughout: readiness and liveness are separate.
        cluster.node(n).sigterm();
        let signalled = Instant::now();
        let ready = loop {
            // The signal reaches the server's handler a moment after kill(2) returns.
            let ready = cluster.call_at(&base, "GET", "/health/ready", None, false).await;
            if ready.status != 200 || signalled.elapsed() > Duration::from_millis(800) {
                break ready;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(ready.status, 503, "{n} is unready after SIGTERM: {}", ready.text());
        let alive = cluster.call_at(&base, "GET", "/health", None, false).await;
        assert_eq!(alive.status, 200, "{n} is alive while it drains: {}", alive.text());
        let node = cluster.node_mut(n);
        node.wait_exit(30).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        node.start();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed,
        0,
        "{failed} of {} runs failed during the rolling restart: {:?}\n{}",
        ok + failed,
        failures.lock().unwrap(),
        cluster.logs()
    );
    assert!(ok >= 20, "the load was steady: only {ok} runs");
    for (id, n) in drained {
        let r = cluster
            .post(&format!("/sessions/{id}/execute"), json!({"code": "1"}))
            .await;
        let v = r.json();
        assert_eq!(r.status, 410, "{}", r.text());
        assert_eq!(v["code"], "session_lost", "{v}");
        assert_eq!(
            (v["details"]["node"].as_str(), v["details"]["reason"].as_str()),
            (Some(n), Some("node_draining")),
            "{v}"
        );
    }
    eprintln!("rolling restart: {ok} stateless runs, none failed");
}

/// A WebSocket to the front door (`/ws`), with the key on the handshake.
struct FrontSocket {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl FrontSocket {
    async fn connect(base: &str) -> FrontSocket {
        let url = base.replace("http://", "ws://") + "/ws";
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
        let (ws, _) = within(10, "the WebSocket handshake", tokio_tungstenite::connect_async(req))
            .await
            .expect("WebSocket through nginx");
        FrontSocket { ws }
    }

    /// Runs a session cell and returns its last message (`result` or `error`).
    async fn cell(&mut self, id: &str, session: &str, code: &str) -> Value {
        let m = json!({"type": "execute", "id": id, "session_id": session, "code": code});
        self.ws.send(Message::Text(m.to_string().into())).await.unwrap();
        within(30, "a WebSocket cell", async {
            loop {
                let Some(Ok(Message::Text(t))) = self.ws.next().await else {
                    panic!("the socket closed")
                };
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id && (v["type"] == "result" || v["type"] == "error") {
                    return v;
                }
            }
        })
        .await
    }

    async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
