//! Async executions shared by several real `runbox serve` nodes (127.0.0.2, 127.0.0.3, 127.0.0.4) through one
//! real PostgreSQL (`database_url`): a job is read, run and deleted from any node, counted against its key over
//! all of them, run once however the nodes race, delivered to its callback once, and finished by another node
//! when its own is killed with -9 — or ended `node_lost` past its attempts. One node without configuration keeps
//! SQLite: that is `async_executions_survive_restarts.rs`, unchanged.

use super::postgres_support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Awaits `fut`, failing the test after `secs` seconds.
async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {secs} s"))
}

/// One `runbox serve` node on its own loopback address, keeping its jobs in the shared database.
struct Node {
    id: String,
    base: String,
    child: Child,
    log: Arc<Mutex<String>>,
    _data: tempfile::TempDir,
    client: reqwest::Client,
}

impl Node {
    /// Starts nodes `(id, address)` on the database at `url`, all at once, and waits until each listens.
    fn start_all(url: &str, nodes: &[(&str, &str)], sets: &[&str]) -> Vec<Node> {
        let mut started = Vec::new();
        for (id, ip) in nodes {
            let data = tempfile::tempdir().unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbox"));
            cmd.args(["serve", "--listen", &format!("{ip}:0"), "--data-dir"])
                .arg(data.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for s in sets {
                cmd.args(["--set", s]);
            }
            // A parent cgroup of its own: a node that starts removes empty cgroups under its parent, which must
            // never be another test's sandbox just being made.
            cmd.args([
                "--set",
                &format!("aggregate.cgroup_parent=\"runbox-shared-store-test-{id}\""),
            ]);
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("RUNBOX_") {
                    cmd.env_remove(k);
                }
            }
            cmd.env("RUNBOX_NODE_ID", id)
                .env("RUNBOX_DATABASE_URL", url)
                .env("RUNBOX_LOG", "info")
                .env("NO_COLOR", "1");
            let mut child = cmd.spawn().expect("start runbox serve");
            let log = runbox_testkit::live::capture_log(child.stderr.take().unwrap());
            started.push((id.to_string(), child, log, data));
        }
        started
            .into_iter()
            .map(|(id, mut child, log, data)| {
                let line = runbox_testkit::live::first_line(child.stdout.take().unwrap(), Duration::from_secs(60))
                    .unwrap_or_default();
                let Some(addr) = line.trim().strip_prefix("runbox listening on ") else {
                    let _ = child.kill();
                    panic!("node {id} did not start ({line:?}); log:\n{}", log.lock().unwrap());
                };
                Node {
                    base: addr.to_string(),
                    id,
                    child,
                    log,
                    _data: data,
                    client: reqwest::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .unwrap(),
                }
            })
            .collect()
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}\nlog:\n{}", self.id, self.log()));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Submits a job here; its id.
    async fn submit(&self, body: Value) -> String {
        let (status, answer) = self.call("POST", "/executions", Some(body)).await;
        assert_eq!(status, 202, "{answer}");
        answer["id"].as_str().unwrap().to_string()
    }

    /// Polls a job here until `done` says it is.
    async fn poll(&self, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let (status, view) = self.call("GET", &format!("/executions/{id}"), None).await;
            assert_eq!(status, 200, "{view}");
            if done(&view) {
                return view;
            }
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "{id} not done within {secs} s on {}: {view}\nlog:\n{}",
                self.id,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs this node has made (the sum of `runbox_executions_total`).
    async fn executions(&self) -> u64 {
        let (_, text) = self.call("GET", "/metrics", None).await;
        text.as_str()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("runbox_executions_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: nothing of the node's own shutdown runs.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the node");
        self.child.wait().expect("reap the node");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child, not yet reaped; no memory is passed.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn done(view: &Value) -> bool {
    view["status"] == "done"
}

/// Runs of a job named `marker`: processes whose command line contains it and whose parent's does not. A run's
/// shell forking its `sleep` is briefly two such processes (the child is a copy of the shell until it execs);
/// counting only the topmost one of each run keeps that from looking like a second run.
fn processes_named(marker: &str) -> usize {
    let named = |pid: &str| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
    };
    let parent = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The field after the command name, which is in parentheses and may hold spaces.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        after.split_whitespace().nth(1).unwrap_or("0").to_string()
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.parse::<u32>().is_ok())
        .filter(|pid| named(pid) && !named(&parent(pid)))
        .count()
}

/// A job that runs for `secs` seconds as a process named `marker`, then prints `finished`.
fn long_job(marker: &str, secs: u32) -> Value {
    json!({"language": "bash", "code": format!("exec -a {marker} bash -c 'sleep {secs}; echo finished'"),
           "timeout_ms": 60000})
}

/// A callback receiver on 127.0.0.1: counts the records POSTed to it, by job id.
async fn callback_counter() -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counts = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(record): axum::Json<Value>| {
            let counts = counts.clone();
            async move {
                let id = record["id"].as_str().unwrap_or_default().to_string();
                *counts.lock().unwrap().entry(id).or_default() += 1;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// Which node holds a job, and how many times one started it, as the database says.
fn holder(pg: &postgres_support::Postgres, id: &str) -> (String, i64) {
    let row = pg.psql(&format!(
        "SELECT COALESCE(node, ''), attempts FROM runbox_jobs WHERE id = '{id}'"
    ));
    let (node, attempts) = row.split_once('|').unwrap_or_else(|| panic!("no job {id}: {row:?}"));
    (node.to_string(), attempts.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_read_run_and_deleted_from_any_node_and_counted_against_its_key_on_all() {
    let Some(pg) = postgres_support::start() else { return };
    let sets = ["async_lease_ms=3000", "async_jobs_per_key=6"];
    let nodes = Node::start_all(&pg.url, &[("a", "127.0.0.2"), ("b", "127.0.0.3")], &sets);
    let (a, b) = (&nodes[0], &nodes[1]);
    assert!(a.base.starts_with("http://127.0.0.2:") && b.base.starts_with("http://127.0.0.3:"));

    // Submitted on a, polled on b, read again on a.
    let id = a.submit(json!({"language": "python", "code": "print(6 * 7)"})).await;
    let view = b.poll(&id, 30, done).await;
    assert_eq!(view["result"]["stdout"], "42\n", "{view}");
    let (status, again) = a.call("GET", &format!("/executions/{id}"), None).await;
    assert_eq!((status, &again["result"]["stdout"]), (200, &json!("42\n")));
    // Deleted on b: gone on a too.
    let (status, removed) = b.call("DELETE", &format!("/executions/{id}"), None).await;
    assert_eq!((status, removed["status"].as_str()), (200, Some("done")), "{removed}");
    let (status, gone) = a.call("GET", &format!("/executions/{id}"), None).await;
    assert_eq!((status, gone["code"].as_str()), (404, Some("not_found")), "{gone}");

    // A running job deleted through the node that does not run it: its run stops on the node that does.
    let marker = format!("runbox-shared-delete-{}", std::process::id());
    let id = a.submit(long_job(&marker, 60)).await;
    b.poll(&id, 30, |v| v["status"] == "running").await;
    within(20, "the job's process starts", async {
        while processes_named(&marker) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let (runner, _) = holder(&pg, &id);
    let other = nodes.iter().find(|n| n.id != runner).unwrap();
    let (status, cancelled) = other.call("DELETE", &format!("/executions/{id}"), None).await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    within(15, "the run on the other node stops", async {
        while processes_named(&marker) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(pg.psql("SELECT COUNT(*) FROM runbox_jobs"), "0");

    // The key's quota (6 records) holds over both nodes, submissions racing on each.
    let submissions = (0..8).map(|i| {
        let node = &nodes[i % 2];
        node.call(
            "POST",
            "/executions",
            Some(json!({"language": "bash", "code": "echo q"})),
        )
    });
    let answers = futures_util::future::join_all(submissions).await;
    let accepted = answers.iter().filter(|(s, _)| *s == 202).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!((accepted, refused.len()), (6, 2), "{answers:?}");
    assert!(refused.iter().all(|(_, body)| body["code"] == "async_quota_exceeded"));
    assert_eq!(pg.psql("SELECT COUNT(*) FROM runbox_jobs"), "6");

    // The database gone: a submission is refused with 503 (retry later), never a 500 or a hang.
    pg.stop();
    let (status, refused) = within(20, "a submission without the database", async {
        a.call(
            "POST",
            "/executions",
            Some(json!({"language": "bash", "code": "echo q"})),
        )
        .await
    })
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (503, Some("store_unavailable")),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_on_two_racing_nodes_each_run_once_and_call_back_once() {
    let Some(pg) = postgres_support::start() else { return };
    let sets = ["async_lease_ms=3000", "callback_allow_private=true"];
    let nodes = Node::start_all(&pg.url, &[("a", "127.0.0.2"), ("b", "127.0.0.3")], &sets);
    let (url, calls) = callback_counter().await;
    let before = nodes[0].executions().await + nodes[1].executions().await;

    const JOBS: usize = 30;
    let mut ids = Vec::new();
    for i in 0..JOBS {
        let body = json!({"language": "bash", "code": format!("echo job-{i}"), "callback_url": url});
        ids.push(nodes[i % 2].submit(body).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let view = nodes[(i + 1) % 2].poll(id, 60, done).await;
        assert_eq!(view["result"]["stdout"], format!("job-{i}\n"), "{view}");
    }
    // Each job started once (by one node), and the nodes made exactly as many runs as there were jobs.
    assert_eq!(pg.psql("SELECT COUNT(*) FROM runbox_jobs WHERE attempts <> 1"), "0");
    let after = nodes[0].executions().await + nodes[1].executions().await;
    assert_eq!(after - before, JOBS as u64, "runs made for {JOBS} jobs");
    eprintln!(
        "jobs per node: {}",
        pg.psql("SELECT node, COUNT(*) FROM runbox_jobs GROUP BY node")
            .replace('\n', ", ")
    );

    // One callback per job, none twice.
    within(30, "every callback", async {
        while calls.lock().unwrap().len() < JOBS {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), JOBS, "{calls:?}");
    for id in &ids {
        assert_eq!(calls.get(id), Some(&1), "callbacks for {id}: {calls:?}");
    }
    assert_eq!(pg.psql("SELECT COUNT(*) FROM runbox_jobs WHERE callback_pending"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_node_is_killed_finishes_on_another_node_once_and_past_its_attempts_ends_node_lost() {
    let Some(pg) = postgres_support::start() else { return };
    let sets = [
        "async_lease_ms=3000",
        "async_max_attempts=2",
        "callback_allow_private=true",
    ];
    let all = [("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4")];
    let mut nodes = Node::start_all(&pg.url, &all, &sets);
    let (url, calls) = callback_counter().await;

    // A long job; its node is killed with -9 mid-run.
    let marker = format!("runbox-shared-failover-{}", std::process::id());
    let mut body = long_job(&marker, 4);
    body["callback_url"] = json!(url);
    let id = nodes[0].submit(body).await;
    nodes[1].poll(&id, 30, |v| v["status"] == "running").await;
    within(20, "the job's process starts", async {
        while processes_named(&marker) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Watch that the job never runs twice at once, from now to its end.
    let most = Arc::new(Mutex::new(0usize));
    let watch = {
        let (most, marker) = (most.clone(), marker.clone());
        tokio::spawn(async move {
            loop {
                let n = processes_named(&marker);
                {
                    let mut m = most.lock().unwrap();
                    *m = (*m).max(n);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let (first, attempts) = holder(&pg, &id);
    assert_eq!(attempts, 1);
    let victim = nodes.iter().position(|n| n.id == first).unwrap();
    nodes[victim].kill();
    let survivor = &nodes[(victim + 1) % 3];
    let view = survivor.poll(&id, 40, done).await;
    watch.abort();
    assert_eq!(view["result"]["stdout"], "finished\n", "{view}");
    let (second, attempts) = holder(&pg, &id);
    assert_ne!(second, first, "finished on another node");
    assert_eq!(attempts, 2, "started twice: once on the killed node, once after");
    assert_eq!(*most.lock().unwrap(), 1, "never two runs of the job at once");
    within(20, "the callback", async {
        while calls.lock().unwrap().get(&id).is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls.lock().unwrap().get(&id), Some(&1), "one callback");

    // A job that has used its attempts and loses its node again ends with `node_lost`, not a third start.
    let marker = format!("runbox-shared-lost-{}", std::process::id());
    let alive: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let id = nodes[alive[0]].submit(long_job(&marker, 30)).await;
    nodes[alive[1]].poll(&id, 30, |v| v["status"] == "running").await;
    let (runner, _) = holder(&pg, &id);
    let runner = alive.iter().copied().find(|&i| nodes[i].id == runner).unwrap();
    // As if an earlier node had died running it too (the database's count of starts). Counted before the kill:
    // after it, the lease may run out (and another node start the job again) before a slow `psql` gets there.
    pg.psql(&format!("UPDATE runbox_jobs SET attempts = 2 WHERE id = '{id}'"));
    nodes[runner].kill();
    let last = alive.iter().copied().find(|&i| i != runner).unwrap();
    let view = nodes[last].poll(&id, 30, done).await;
    assert_eq!(view["error"]["code"], "node_lost", "{view}");
    assert!(view["result"].is_null(), "{view}");
    assert!(view["error"]["message"].as_str().unwrap().contains("2 times"), "{view}");
    assert_eq!(holder(&pg, &id).1, 2, "not started a third time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starting_under_the_id_of_a_live_node_leaves_that_nodes_running_jobs_alone() {
    // Two processes with one node id (a copied configuration, two servers on one host): the one that starts
    // puts back in the queue only the jobs whose lease has run out, never a job the other is running.
    let Some(pg) = postgres_support::start() else { return };
    let sets = ["async_lease_ms=3000"];
    let first = Node::start_all(&pg.url, &[("same", "127.0.0.2")], &sets);
    let marker = format!("runbox-shared-same-id-{}", std::process::id());
    let id = first[0].submit(long_job(&marker, 4)).await;
    first[0].poll(&id, 30, |v| v["status"] == "running").await;
    let second = Node::start_all(&pg.url, &[("same", "127.0.0.3")], &sets);
    let most = Arc::new(Mutex::new(0usize));
    let watch = {
        let (most, marker) = (most.clone(), marker.clone());
        tokio::spawn(async move {
            loop {
                let n = processes_named(&marker);
                {
                    let mut m = most.lock().unwrap();
                    *m = (*m).max(n);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let view = second[0].poll(&id, 40, done).await;
    watch.abort();
    assert_eq!(view["result"]["stdout"], "finished\n", "{view}");
    assert_eq!(
        holder(&pg, &id).1,
        1,
        "started once: the second node did not take it back"
    );
    assert_eq!(*most.lock().unwrap(), 1, "never two runs of the job at once");
}
