//! `runbox bench --soak SECS`: a bounded soak. It starts a server of its own on a private data directory and
//! cgroup parent, drives a mix at the machine's capacity for the given time — stateless runs in several languages
//! (Python, JavaScript, Bash, C with some fresh compiles), session cells, session file uploads read back by a cell,
//! async jobs polled to their end — and reports throughput, latency percentiles and every error. Then it proves
//! nothing leaked: with the load gone, the server's descriptors and memory are back near where they were after
//! the warm-up, no session workspace is left; and once the server has stopped, none of its processes, cgroups,
//! mounts or workspaces remain. It exits 1 when any run failed or anything leaked, so CI can run a short one.

use runbox_engine::sync::LockOrRecover;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The server under soak, on its own data directory and cgroup parent.
struct Soaked {
    child: Child,
    url: String,
    data: tempfile::TempDir,
    cgroup_parent: String,
}

impl Soaked {
    fn start() -> anyhow::Result<Soaked> {
        let data = tempfile::tempdir()?;
        let cgroup_parent = format!("runbox-soak-{}", std::process::id());
        let cgroup_setting = format!("aggregate.cgroup_parent={cgroup_parent}");
        let (child, url) = crate::bench::spawn_serve(data.path(), &["--set", &cgroup_setting], Stdio::inherit())?;
        Ok(Soaked {
            child,
            url,
            data,
            cgroup_parent,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and the exit status (30 s at most).
    fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("the server did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The cgroup parent's directory under each hierarchy this host has.
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let host = runbox_sandbox::cgroup::detect();
        // Every hierarchy the server makes groups in: the CPU cap's own (`cpu`) too, which is a hierarchy apart
        // from `cpuacct` on hosts that mount them separately (this one skipped it, and each soak left its group).
        host.hierarchies()
            .into_iter()
            .map(|root| root.join(&self.cgroup_parent))
            .filter(|d| d.is_dir())
            .collect()
    }
}

impl Drop for Soaked {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop();
        }
        // The parent cgroups this soak made (empty once the server is gone).
        for dir in self.cgroup_dirs() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Every process as (pid, parent).
fn processes() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            out.push((pid, ppid));
        }
    }
    out
}

fn descendants(root: u32) -> Vec<u32> {
    let all = processes();
    let (mut found, mut frontier) = (Vec::new(), vec![root]);
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &all {
            if ppid == p {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Mounts whose mount point lies under `dir`.
fn mounts_under(dir: &Path) -> usize {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&prefix)))
        .count()
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    latencies_ms: BTreeMap<&'static str, Vec<f64>>,
    errors: BTreeMap<&'static str, Vec<String>>,
}

impl Tally {
    fn record(&mut self, kind: &'static str, started: Instant, outcome: anyhow::Result<()>) {
        match outcome {
            Ok(()) => self
                .latencies_ms
                .entry(kind)
                .or_default()
                .push(started.elapsed().as_secs_f64() * 1000.0),
            Err(e) => self.errors.entry(kind).or_default().push(format!("{e:#}")),
        }
    }
}

/// One client of the soak: its own session, and a turn through the mix per iteration.
struct Client {
    http: reqwest::Client,
    base: String,
    session: Option<String>,
    n: u64,
    /// 5xx answers seen by every client.
    server_errors: Arc<AtomicU64>,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status();
        let text = r.text().await?;
        if status.is_server_error() {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        if !status.is_success() {
            bail!("{path}: {status}: {}", text.chars().take(300).collect::<String>());
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    async fn run(&self, language: &str, code: &str, expect: &str) -> anyhow::Result<()> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/execute",
                Some(json!({"language": language, "code": code})),
            )
            .await?;
        if v["status"] != "ok" || v["stdout"] != expect {
            bail!("{language}: {}", v.to_string().chars().take(300).collect::<String>());
        }
        Ok(())
    }

    async fn session(&mut self) -> anyhow::Result<String> {
        if let Some(id) = &self.session {
            return Ok(id.clone());
        }
        let v = self
            .call(reqwest::Method::POST, "/sessions", Some(json!({"language": "python"})))
            .await?;
        let id = v["id"].as_str().context("a session id")?.to_string();
        self.call(
            reqwest::Method::POST,
            &format!("/sessions/{id}/execute"),
            Some(json!({"code": "n = 0"})),
        )
        .await?;
        self.session = Some(id.clone());
        Ok(id)
    }

    async fn cell(&mut self) -> anyhow::Result<()> {
        let id = self.session().await?;
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/sessions/{id}/execute"),
                Some(json!({"code": "n += 1\nprint(n)"})),
            )
            .await?;
        if v["status"] != "ok" || v["stdout"].as_str().is_none_or(|s| s.trim().parse::<u64>().is_err()) {
            bail!("cell: {v}");
        }
        Ok(())
    }

    async fn upload(&mut self) -> anyhow::Result<()> {
        let id = self.session().await?;
        let content = format!("{}\n", "x".repeat(4096 + (self.n % 4096) as usize));
        let r = self
            .http
            .put(format!("{}/sessions/{id}/files/data.txt", self.base))
            .body(content.clone())
            .send()
            .await?;
        if r.status().is_server_error() {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        if !r.status().is_success() {
            bail!("upload: {}: {}", r.status(), r.text().await.unwrap_or_default());
        }
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/sessions/{id}/execute"),
                Some(json!({"code": "print(len(open('data.txt').read()))"})),
            )
            .await?;
        if v["stdout"] != format!("{}\n", content.len()) {
            bail!("the uploaded file read back wrong: {v}");
        }
        Ok(())
    }

    /// Ends the client's session (every few turns, and at the end), so sessions come and go during the soak.
    async fn end_session(&mut self) -> anyhow::Result<()> {
        if let Some(id) = self.session.take() {
            self.call(reqwest::Method::DELETE, &format!("/sessions/{id}"), None)
                .await?;
        }
        Ok(())
    }

    async fn async_job(&self) -> anyhow::Result<()> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/executions",
                Some(json!({"language": "bash", "code": format!("echo job {}", self.n)})),
            )
            .await?;
        let location = v["location"].as_str().context("a location")?.to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let view = self.call(reqwest::Method::GET, &location, None).await?;
            if view["status"] == "done" {
                if view["result"]["stdout"] != format!("job {}\n", self.n) {
                    bail!("async job: {view}");
                }
                self.call(reqwest::Method::DELETE, &location, None).await?;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("async job not done within 60 s: {view}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// One operation of the mix, chosen by the turn number.
    async fn turn(&mut self, tally: &Mutex<Tally>) {
        self.n += 1;
        let started = Instant::now();
        let (kind, outcome): (&'static str, anyhow::Result<()>) = match self.n % 10 {
            0 | 1 => ("python", self.run("python", "print(6 * 7)", "42\n").await),
            2 => ("javascript", self.run("javascript", "console.log(6 * 7)", "42\n").await),
            3 => ("bash", self.run("bash", "echo $((6 * 7))", "42\n").await),
            4 => {
                // Mostly the compile cache's hit; one in four a fresh compile.
                let variant = if self.n % 40 == 4 { self.n } else { 0 };
                let code = format!("#include <stdio.h>\nint main(void) {{ printf(\"%d\\n\", 42 + {variant} * 0); }}");
                ("c", self.run("c", &code, "42\n").await)
            }
            5 | 6 => ("session_cell", self.cell().await),
            7 => ("session_upload", self.upload().await),
            8 => ("async_job", self.async_job().await),
            _ => {
                let outcome = self.end_session().await;
                ("session_delete", outcome)
            }
        };
        tally.lock_or_recover().record(kind, started, outcome);
    }
}

/// Descriptors the server may hold per jail (measured: two, its pipes to the jail; one more as slack).
const FDS_PER_JAIL: usize = 3;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// What the server holds when idle: its descriptors, its memory, and what its warm pools explain.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Idle {
    /// The server's open descriptors.
    fds: usize,
    rss_bytes: u64,
    /// The server's own children: one jail per warm sandbox, zygote and session.
    jails: usize,
    descendants: usize,
    /// Workspaces of runs (warm sandboxes and zygotes included) and of sessions, and mounts under the data dir.
    workspaces: usize,
    session_workspaces: usize,
    mounts: usize,
    /// Sessions the API lists, and warm sessions nobody owns yet.
    sessions: u64,
    warm_sessions: u64,
}

/// A gauge from the Prometheus text.
fn gauge(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn idle_figures(server: &Soaked, http: &reqwest::Client) -> anyhow::Result<Idle> {
    let metrics = http.get(format!("{}/metrics", server.url)).send().await?.text().await?;
    let health: Value = http.get(format!("{}/health", server.url)).send().await?.json().await?;
    let pid = server.pid();
    Ok(Idle {
        fds: open_fds(pid),
        rss_bytes: rss_bytes(pid),
        jails: processes().iter().filter(|&&(_, ppid)| ppid == pid).count(),
        descendants: descendants(pid).len(),
        workspaces: entries(&server.data.path().join("runs")),
        session_workspaces: entries(&server.data.path().join("sessions")),
        mounts: mounts_under(server.data.path()),
        sessions: health["sessions"].as_u64().unwrap_or(u64::MAX),
        warm_sessions: gauge(&metrics, "runbox_warm_sessions"),
    })
}

/// Waits until the server holds nothing a run, session or job could still explain (10 s at most).
async fn settle(server: &Soaked, http: &reqwest::Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health: Value = http.get(format!("{}/health", server.url)).send().await?.json().await?;
        let busy = health["active_runs"].as_u64().unwrap_or(1) + health["queued"].as_u64().unwrap_or(1);
        let starting: u64 = health["pools"]
            .as_array()
            .map(|p| p.iter().map(|p| p["starting"].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0);
        if busy == 0 && starting == 0 && health["sessions"].as_u64().unwrap_or(0) <= 1 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(());
        }
        if Instant::now() > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn main(secs: u64, clients: Option<usize>, json_out: Option<&Path>) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(soak(secs, clients, json_out))
}

async fn soak(secs: u64, clients: Option<usize>, json_out: Option<&Path>) -> anyhow::Result<i32> {
    let mut server = Soaked::start()?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let config: Value = http.get(format!("{}/health", server.url)).send().await?.json().await?;
    // At capacity: twice as many clients as the server runs at once, so its queue is never empty.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let clients = clients.unwrap_or(8 * cores).max(1);
    eprintln!("soaking {} for {secs} s with {clients} clients ...", server.url);

    // Warm-up: one turn of everything, then the idle figures the end is compared with.
    let tally = Arc::new(Mutex::new(Tally::default()));
    let server_errors = Arc::new(AtomicU64::new(0));
    let mut warm = Client {
        http: http.clone(),
        base: server.url.clone(),
        session: None,
        n: 0,
        server_errors: server_errors.clone(),
    };
    for _ in 0..10 {
        warm.turn(&tally).await;
    }
    warm.end_session().await?;
    let warm_errors: usize = tally.lock().unwrap().errors.values().map(Vec::len).sum();
    if warm_errors > 0 {
        bail!("the warm-up failed: {:?}", tally.lock().unwrap().errors);
    }
    *tally.lock().unwrap() = Tally::default();
    settle(&server, &http).await?;
    let before = idle_figures(&server, &http).await?;

    let stalls_before = crate::stalls::Stalls::now();
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let tally = tally.clone();
        let mut c = Client {
            http: http.clone(),
            base: server.url.clone(),
            session: None,
            n: i as u64,
            server_errors: server_errors.clone(),
        };
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                c.turn(&tally).await;
            }
            let t = Instant::now();
            let outcome = c.end_session().await;
            tally.lock_or_recover().record("session_delete", t, outcome);
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stalls = crate::stalls::Stalls::now().since(&stalls_before);
    // The clients' kept-alive connections go with their client: a fresh one measures.
    drop(warm);
    drop(http);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    settle(&server, &http).await?;
    // Give pools and the allocator a moment, then compare with the warm-up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = idle_figures(&server, &http).await?;
    let server_5xx = server_errors.load(Ordering::Relaxed);
    let status = server.stop()?;
    let left_processes = descendants(server.pid());
    let left_cgroups: Vec<String> = server
        .cgroup_dirs()
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path().display().to_string())
        .collect();
    let left_mounts = mounts_under(server.data.path());
    let left_workspaces = entries(&server.data.path().join("runs")) + entries(&server.data.path().join("sessions"));

    // The report.
    let tally = tally.lock().unwrap();
    let total_ok: usize = tally.latencies_ms.values().map(Vec::len).sum();
    let total_err: usize = tally.errors.values().map(Vec::len).sum();
    let mut kinds = serde_json::Map::new();
    println!("soak: {secs} s, {clients} clients, sandbox {}", config["sandbox"]);
    println!(
        "{:<16} {:>8} {:>8} {:>10} {:>10} {:>10} {:>8}",
        "operation", "ok", "errors", "p50 ms", "p95 ms", "p99 ms", "per s"
    );
    for kind in tally
        .latencies_ms
        .keys()
        .chain(tally.errors.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let mut ms = tally.latencies_ms.get(kind).cloned().unwrap_or_default();
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let errors = tally.errors.get(kind).map_or(0, Vec::len);
        let (p50, p95, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.95), percentile(&ms, 0.99));
        println!(
            "{kind:<16} {:>8} {errors:>8} {p50:>10.1} {p95:>10.1} {p99:>10.1} {:>8.1}",
            ms.len(),
            ms.len() as f64 / elapsed
        );
        kinds.insert(
            kind.to_string(),
            json!({"ok": ms.len(), "errors": errors, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}),
        );
    }
    println!(
        "total: {total_ok} ok, {total_err} errors, {:.1} operations/s; server 5xx answers: {server_5xx}",
        total_ok as f64 / elapsed
    );
    for (kind, errs) in tally.errors.iter() {
        for e in errs.iter().take(3) {
            println!("  error ({kind}): {e}");
        }
    }
    // Not a verdict: when runs were starved, whether the whole machine stalled meanwhile.
    println!("host stalls during the load: {}", stalls.describe());
    println!("idle before: {before:?}");
    println!("idle after:  {after:?}");

    // The verdicts. Warm pools may have grown under load (each warm sandbox is a jail with a few descriptors, a
    // workspace and its mount), so descriptors and processes are compared net of what the pools explain.
    let mut leaks = Vec::new();
    // Each jail the server holds (a warm sandbox, a zygote, a warm session) accounts for a few descriptors
    // (its pipes and pidfd); the pools and warm sessions may have grown under load and shrink only after a quiet
    // minute, so descriptors are compared net of the jails they explain.
    let fd_allowance = 8 + FDS_PER_JAIL * after.jails.saturating_sub(before.jails);
    if after.fds > before.fds + fd_allowance {
        leaks.push(format!(
            "descriptors: {} after, {} before, with {} jails after and {} before",
            after.fds, before.fds, after.jails, before.jails
        ));
    }
    let rss_allowance = (before.rss_bytes / 2).max(32 << 20);
    if after.rss_bytes > before.rss_bytes + rss_allowance {
        leaks.push(format!(
            "server memory: {} MiB after, {} MiB before",
            after.rss_bytes >> 20,
            before.rss_bytes >> 20
        ));
    }
    // Every session was deleted: what is left are warm sessions, one workspace each.
    if after.sessions != 0 || after.session_workspaces as u64 > after.warm_sessions {
        leaks.push(format!(
            "sessions: {} listed, {} workspaces for {} warm sessions",
            after.sessions, after.session_workspaces, after.warm_sessions
        ));
    }
    let unexplained = |i: &Idle| i.mounts.saturating_sub(i.workspaces + i.session_workspaces);
    if unexplained(&after) > unexplained(&before) {
        leaks.push(format!(
            "mounts: {} for {} workspaces",
            after.mounts,
            after.workspaces + after.session_workspaces
        ));
    }
    if !status.success() {
        leaks.push(format!("the server exited with {status}"));
    }
    if !left_processes.is_empty() {
        leaks.push(format!("processes left after the server stopped: {left_processes:?}"));
    }
    if !left_cgroups.is_empty() {
        leaks.push(format!("cgroups left: {left_cgroups:?}"));
    }
    if left_mounts > 0 || left_workspaces > 0 {
        leaks.push(format!(
            "left after stop: {left_mounts} mounts, {left_workspaces} workspaces"
        ));
    }
    for l in &leaks {
        println!("LEAK: {l}");
    }
    let ok = leaks.is_empty() && total_err == 0 && server_5xx == 0;
    println!("{}", if ok { "soak passed" } else { "soak FAILED" });
    if let Some(path) = json_out {
        let doc = json!({
            "seconds": secs, "clients": clients, "elapsed_s": elapsed, "operations": kinds,
            "ok": total_ok, "errors": total_err, "server_5xx": server_5xx,
            "idle_before": before, "idle_after": after, "leaks": leaks, "host_stalls": stalls,
            "left_after_stop": {"processes": left_processes.len(), "cgroups": left_cgroups.len(),
                "mounts": left_mounts, "workspaces": left_workspaces},
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(if ok { 0 } else { 1 })
}
