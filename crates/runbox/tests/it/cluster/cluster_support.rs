//! A runbox cluster on one machine, for tests: `runbox serve` nodes on their own loopback addresses
//! (127.0.0.2, 127.0.0.3, ...), each knowing the others as peers, behind nginx running the project's own front-door
//! configuration (`deploy/nginx/runbox.conf`, with its node and listen lines replaced). Nodes can be killed,
//! stopped with SIGTERM and started again on the same address, as an orchestrator would.
//!
//! nginx comes from `scripts/install-cluster-tools.sh`; it runs as one process (`master_process off`) from a
//! temporary directory with its own configuration, never as the system service.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The one API key every node shares (a Secret in Kubernetes).
pub const KEY: &str = "cluster-key-0123456789abcdef";

pub const NGINX: &str = "/usr/sbin/nginx";

/// Awaits `fut`, failing the test after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} took longer than {secs} s"),
    }
}

/// A free TCP port on `ip` (bound, then released for the node to take).
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

/// One `runbox serve` node.
pub struct Node {
    pub name: String,
    pub ip: String,
    pub port: u16,
    data: tempfile::TempDir,
    env: Vec<(String, String)>,
    sets: Vec<String>,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Node {
    pub fn base(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// What this node logged (all its lives).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the node and waits until it says it listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbox"));
        cmd.args(["serve", "--listen", &format!("{}:{}", self.ip, self.port), "--data-dir"])
            .arg(self.data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for s in &self.sets {
            cmd.args(["--set", s]);
        }
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RUNBOX_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RUNBOX_LOG", "info").env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start runbox serve");
        runbox_testkit::live::capture_log_into(child.stderr.take().unwrap(), self.log.clone());
        let line =
            runbox_testkit::live::first_line(child.stdout.take().unwrap(), Duration::from_secs(60)).unwrap_or_default();
        if !line.contains("runbox listening on") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not start: {line:?}\nlog:\n{}", self.name, self.log());
        }
        self.child = Some(child);
    }

    /// SIGKILL: nothing of the node's own shutdown runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (the node starts draining; see [`Node::wait_exit`]).
    pub fn sigterm(&self) {
        let child = self.child.as_ref().expect("a running node");
        // SAFETY: kill(2) on the pid of our own child, not reaped yet.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM {}", self.name);
    }

    /// SIGTERM, then waits (at most `secs`) for the node to exit on its own.
    pub async fn terminate(&mut self, secs: u64) {
        self.sigterm();
        self.wait_exit(secs).await;
    }

    /// Waits (at most `secs`) for the node to exit on its own.
    pub async fn wait_exit(&mut self, secs: u64) {
        let Some(mut child) = self.child.take() else { return };
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if child.try_wait().expect("wait for a node").is_some() {
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {secs} s of SIGTERM; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// nginx in front of the nodes.
pub struct FrontDoor {
    pub base: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl FrontDoor {
    /// The project's front-door configuration with these nodes and this address.
    pub fn config(nodes: &[&Node], listen: &str) -> String {
        let shipped = std::fs::read_to_string(repo_root().join("deploy/nginx/runbox.conf"))
            .expect("read deploy/nginx/runbox.conf");
        let mut out = String::new();
        let mut nodes_written = false;
        for line in shipped.lines() {
            if line.trim_end().ends_with("# node") {
                if !nodes_written {
                    for n in nodes {
                        out.push_str(&format!(
                            "    server {}:{} max_fails=1 fail_timeout=2s;\n",
                            n.ip, n.port
                        ));
                    }
                    nodes_written = true;
                }
            } else if line.trim_end().ends_with("# front door") {
                out.push_str(&format!("    listen {listen};\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        assert!(nodes_written, "deploy/nginx/runbox.conf has no `# node` lines");
        out
    }

    pub fn start(nodes: &[&Node]) -> FrontDoor {
        assert!(
            Path::new(NGINX).exists(),
            "nginx is missing: run scripts/install-cluster-tools.sh (scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let ip = "127.0.0.5";
        let port = free_port(ip);
        let listen = format!("{ip}:{port}");
        std::fs::write(dir.path().join("runbox.conf"), FrontDoor::config(nodes, &listen)).unwrap();
        let d = dir.path().display();
        let main = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 include {d}/runbox.conf;\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
        let child = Command::new(NGINX)
            .args([
                "-p",
                &d.to_string(),
                "-c",
                &format!("{d}/nginx.conf"),
                "-e",
                &format!("{d}/error.log"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {listen}: {}",
                FrontDoor::read_log(dir.path())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        FrontDoor {
            base: format!("http://{listen}"),
            dir,
            child,
        }
    }

    fn read_log(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    }

    /// nginx's error log (failed upstream attempts show here).
    pub fn log(&self) -> String {
        FrontDoor::read_log(self.dir.path())
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Nodes `n1`..`nN` on 127.0.0.2.. and nginx in front.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub front: FrontDoor,
    pub client: reqwest::Client,
}

impl Drop for Cluster {
    /// Stops every node as an orchestrator would (SIGTERM, a bounded wait, then SIGKILL), so that each tears its
    /// sandboxes down, then removes the nodes' parent cgroups from every hierarchy.
    fn drop(&mut self) {
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            n.sigterm();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for n in &mut self.nodes {
            while let Some(child) = n.child.as_mut() {
                if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                    n.kill9();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let roots = std::fs::read_dir("/sys/fs/cgroup")
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default();
        for n in &self.nodes {
            let parent = format!("runbox-cluster-test-{}", n.name);
            for root in roots.iter().chain([PathBuf::from("/sys/fs/cgroup")].iter()) {
                remove_cgroup_tree(&root.join(&parent));
            }
        }
    }
}

/// Removes a cgroup directory and its empty children (cgroups are removed with rmdir, deepest first).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON body, after checking the status.
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.json()
    }
}

impl Cluster {
    /// Starts `n` nodes with these `--set` settings each, then the front door.
    pub fn start(n: usize, sets: &[&str]) -> Cluster {
        Cluster::start_with_env(n, sets, &[])
    }

    /// [`Cluster::start`], every node also given the variables `env` (e.g. a shared `RUNBOX_DATABASE_URL`).
    pub fn start_with_env(n: usize, sets: &[&str], env: &[(&str, &str)]) -> Cluster {
        let addrs: Vec<(String, String, u16)> = (0..n)
            .map(|i| {
                let ip = format!("127.0.0.{}", i + 2);
                let port = free_port(&ip);
                (format!("n{}", i + 1), ip, port)
            })
            .collect();
        let peers = addrs
            .iter()
            .map(|(name, ip, port)| format!("{name}=http://{ip}:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (name, ip, port) in addrs {
            let mut all_sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            // Each node its own parent cgroup: a node that starts sweeps empty cgroups under its parent, and
            // must never race another node's sandboxes.
            all_sets.push(format!("aggregate.cgroup_parent=\"runbox-cluster-test-{name}\""));
            let mut node = Node {
                env: vec![
                    ("RUNBOX_NODE_ID".into(), name.clone()),
                    ("RUNBOX_CLUSTER_PEERS".into(), peers.clone()),
                    ("RUNBOX_API_KEY".into(), KEY.into()),
                ]
                .into_iter()
                .chain(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .collect(),
                name,
                ip,
                port,
                data: tempfile::tempdir().unwrap(),
                sets: all_sets,
                child: None,
                log: Arc::new(Mutex::new(String::new())),
            };
            node.start();
            nodes.push(node);
        }
        let front = FrontDoor::start(&nodes.iter().collect::<Vec<_>>());
        Cluster {
            nodes,
            front,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// The node with this id.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// One request to `base` (the front door or a node) with the cluster's key.
    pub async fn call_at(
        &self,
        base: &str,
        method: &str,
        path: &str,
        body: Option<reqwest::Body>,
        json: bool,
    ) -> Reply {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(KEY);
        if let Some(b) = body {
            req = req
                .header(
                    "content-type",
                    if json {
                        "application/json"
                    } else {
                        "application/octet-stream"
                    },
                )
                .body(b);
        }
        let started = Instant::now();
        let what = format!("{method} {base}{path}");
        let answer = within(90, &what, req.send())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}\nnginx log:\n{}", self.front.log()));
        let status = answer.status().as_u16();
        let body = within(90, &what, answer.bytes())
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        Reply {
            status,
            body,
            elapsed: started.elapsed(),
        }
    }

    /// Through the front door.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| reqwest::Body::from(b.to_string()));
        self.call_at(&self.front.base, method, path, body, true).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    /// Executions a node counted (`runbox_executions_total`, every language and status), read from it directly.
    pub async fn executions_on(&self, name: &str) -> u64 {
        let metrics = self
            .call_at(&self.node(name).base(), "GET", "/metrics", None, false)
            .await;
        assert_eq!(metrics.status, 200, "{}", metrics.text());
        metrics
            .text()
            .lines()
            .filter(|l| l.starts_with("runbox_executions_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// The node a session or execution id names.
    pub fn owner_of(id: &str) -> String {
        id.rsplit_once('_').map(|(_, n)| n.to_string()).unwrap_or_default()
    }

    /// Everything the nodes and nginx logged, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let log = n.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            out.push_str(&format!("--- {} (last 40 lines)\n", n.name));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out.push_str("--- nginx\n");
        out.push_str(&self.front.log());
        out
    }
}
