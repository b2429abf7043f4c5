//! `runbox bench`: measures what the speed targets name, end to end over HTTP on loopback. It starts a server (or
//! uses `--url`), measures latency percentiles sequentially and under concurrency, throughput, compile-cache
//! effect, session start and round trip, memory per idle session and idle server memory, and prints a table
//! (and JSON with `--json`). With `--compare-subprocess` it runs the same workloads against a second server with
//! warm pools and the compile cache off, so every figure comes with its ratio from the same run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Args)]
pub struct BenchArgs {
    /// Benchmark a running server instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// Sequential samples per latency figure.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Seconds of load per concurrency level.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Concurrency levels for the throughput runs.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    concurrency: Vec<usize>,
    /// Also run every workload without warm pools or compile cache, for ratios.
    #[arg(long)]
    compare_subprocess: bool,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Idle sessions to open for the memory figure.
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Instead of the figures: a soak of this many seconds (a mix at capacity, then proof that nothing leaked;
    /// exits 1 on any error or leak). Always on a server of its own.
    #[arg(long, value_name = "SECS")]
    soak: Option<u64>,
    /// Concurrent clients of the soak (default: eight per core).
    #[arg(long)]
    soak_clients: Option<usize>,
}

/// A server this benchmark started; killed on drop.
struct Server {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn start_server(extra: &[&str]) -> anyhow::Result<Server> {
    let data = tempfile::tempdir()?;
    let (child, url) = spawn_serve(data.path(), extra, Stdio::null())?;
    Ok(Server {
        child,
        url,
        _data: data,
    })
}

/// Starts this binary's `runbox serve` on a free loopback port over `data_dir` with `extra` arguments, and returns
/// it with the base URL from its "listening" line (for the bench and the soak).
pub(crate) fn spawn_serve(data_dir: &Path, extra: &[&str], stderr: Stdio) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("RUNBOX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let url = line
        .trim()
        .strip_prefix("runbox listening on ")
        .context("the server did not start")?
        .to_string();
    Ok((child, url))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[derive(Debug, Clone, Serialize)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    samples: usize,
}

fn latency(mut ms: Vec<f64>) -> Latency {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Latency {
        p50_ms: percentile(&ms, 0.5),
        p99_ms: percentile(&ms, 0.99),
        samples: ms.len(),
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let r = client.post(url).json(body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("{url}: {status}: {v}");
    }
    Ok(v)
}

async fn timed(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<f64> {
    let t = Instant::now();
    let v = post(client, url, body).await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if v.get("status").and_then(Value::as_str).is_some_and(|s| s != "ok") {
        bail!("run failed: {v}");
    }
    Ok(ms)
}

async fn sequential(client: &reqwest::Client, url: &str, body: &Value, n: usize) -> anyhow::Result<Latency> {
    for _ in 0..3 {
        timed(client, url, body).await?; // warm-up
    }
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        ms.push(timed(client, url, body).await?);
    }
    Ok(latency(ms))
}

#[derive(Debug, Clone, Serialize)]
struct Load {
    concurrency: usize,
    runs_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

async fn load(client: &reqwest::Client, url: &str, body: &Value, concurrency: usize, secs: u64) -> Load {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body) = (client.clone(), url.to_string(), body.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ms, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                match timed(&client, &url, &body).await {
                    Ok(t) => ms.push(t),
                    Err(_) => errors += 1,
                }
            }
            (ms, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((ms, e)) = t.await {
            all.extend(ms);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let lat = latency(all.clone());
    Load {
        concurrency,
        runs_per_s: all.len() as f64 / elapsed,
        p50_ms: lat.p50_ms,
        p99_ms: lat.p99_ms,
        errors,
    }
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    Some(kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok()? * 1024)
}

/// Every figure of one server.
async fn measure(args: &BenchArgs, base: &str, server_pid: Option<u32>, full: bool) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .build()?;
    let exec = format!("{base}/execute");
    let idle_rss = server_pid.and_then(rss_of);
    let py = json!({"language": "python", "code": "print(1)"});
    let js = json!({"language": "javascript", "code": "console.log(1)"});
    let sh = json!({"language": "bash", "code": "echo 1"});
    // Give the pools time to fill before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let python = sequential(&client, &exec, &py, args.samples).await?;
    let node = sequential(&client, &exec, &js, args.samples / 2).await?;
    let bash = sequential(&client, &exec, &sh, args.samples).await?;

    let nonce = std::process::id();
    let mut c_first = Vec::new();
    for i in 0..5 {
        let code = format!(
            "#include <stdio.h>\n// {nonce}-{i}-{}\nint main(void) {{ puts(\"hi\"); return 0; }}\n",
            rand_u64()
        );
        c_first.push(timed(&client, &exec, &json!({"language": "c", "code": code})).await?);
    }
    let c_same_code = format!("#include <stdio.h>\n// {nonce}-same\nint main(void) {{ puts(\"hi\"); return 0; }}\n");
    let c_same = sequential(&client, &exec, &json!({"language": "c", "code": c_same_code}), 20).await?;

    let mut loads = Vec::new();
    if full {
        for &c in &args.concurrency {
            loads.push(load(&client, &exec, &py, c, args.duration_s).await);
        }
    }

    // Sessions: start-up, round trip, memory when idle. A first round lets the warm-session set adapt to the
    // demand, as it would on a server under steady load; the second round is measured.
    for _ in 0..args.sessions.max(1) {
        if let Ok(s) = post(&client, &format!("{base}/sessions"), &json!({"language": "python"})).await {
            let _ = client
                .delete(format!("{base}/sessions/{}", s["id"].as_str().unwrap_or_default()))
                .send()
                .await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut create_ms = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..args.sessions.max(1) {
        let t = Instant::now();
        let s = post(&client, &format!("{base}/sessions"), &json!({"language": "python"})).await?;
        create_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        ids.push(s["id"].as_str().unwrap_or_default().to_string());
    }
    let first = &ids[0];
    let cell = format!("{base}/sessions/{first}/execute");
    post(&client, &cell, &json!({"code": "x = 0"})).await?;
    let round_trip = sequential(&client, &cell, &json!({"code": "x += 1"}), args.samples).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut mem = Vec::new();
    for id in &ids {
        let info: Value = client.get(format!("{base}/sessions/{id}")).send().await?.json().await?;
        mem.push(info["memory_bytes"].as_u64().unwrap_or(0) as f64);
    }
    for id in &ids {
        let _ = client.delete(format!("{base}/sessions/{id}")).send().await;
    }
    let health: Value = client.get(format!("{base}/health")).send().await?.json().await?;
    Ok(json!({
        "python_print": python,
        "node_console_log": node,
        "bash_echo": bash,
        "c_hello_first_compile_ms": latency(c_first),
        "c_hello_same_source": c_same,
        "python_load": loads,
        "session_create": latency(create_ms),
        "session_round_trip": round_trip,
        "idle_session_memory_bytes": mem.iter().sum::<f64>() / mem.len().max(1) as f64,
        "idle_server_rss_bytes": idle_rss,
        "sandbox": health["sandbox"],
    }))
}

fn rand_u64() -> u64 {
    u64::from_le_bytes(runbox_engine::random_bytes())
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[*p],
        };
    }
    cur.as_f64().unwrap_or(f64::NAN)
}

fn print_table(main: &Value, base: Option<&Value>) {
    // The ratio is always "how many times better than without pools": >1 means runbox with pools wins.
    let row = |name: &str, path: &[&str], unit: &str, target: &str| {
        let a = f(main, path);
        let higher_is_better = unit == "run/s";
        let ratio = base
            .map(|b| {
                if higher_is_better {
                    a / f(b, path)
                } else {
                    f(b, path) / a
                }
            })
            .filter(|r| r.is_finite());
        let ratio = ratio.map(|r| format!("{r:>6.1}x")).unwrap_or_default();
        println!("{name:<44} {a:>10.2} {unit:<5} {target:<12} {ratio}");
    };
    println!(
        "{:<44} {:>10} {:<5} {:<12} {}",
        "figure",
        "value",
        "unit",
        "target",
        if base.is_some() { "better than no-pool by" } else { "" }
    );
    row(
        "stateless print(1) Python p50",
        &["python_print", "p50_ms"],
        "ms",
        "<= 2",
    );
    row(
        "stateless print(1) Python p99",
        &["python_print", "p99_ms"],
        "ms",
        "<= 6",
    );
    row(
        "stateless console.log(1) Node p50",
        &["node_console_log", "p50_ms"],
        "ms",
        "<= 3",
    );
    row("stateless echo 1 Bash p50", &["bash_echo", "p50_ms"], "ms", "<= 2");
    row(
        "C hello, first compile p50",
        &["c_hello_first_compile_ms", "p50_ms"],
        "ms",
        "<= 150",
    );
    row(
        "C hello, same source again p50",
        &["c_hello_same_source", "p50_ms"],
        "ms",
        "<= 3",
    );
    if let Some(loads) = main["python_load"].as_array() {
        for (i, l) in loads.iter().enumerate() {
            let name = format!("Python throughput at concurrency {}", l["concurrency"]);
            let target = if l["concurrency"] == 16 { ">= 600" } else { "" };
            row(&name, &["python_load", &i.to_string(), "runs_per_s"], "run/s", target);
        }
    }
    row(
        "new Python session ready p50",
        &["session_create", "p50_ms"],
        "ms",
        "<= 5",
    );
    row(
        "session round trip (x += 1) p50",
        &["session_round_trip", "p50_ms"],
        "ms",
        "<= 0.5",
    );
    let mb = |v: &Value, k: &str| v[k].as_f64().map(|b| b / 1048576.0).unwrap_or(f64::NAN);
    println!(
        "{:<44} {:>10.1} {:<5} {:<12}",
        "idle Python session memory (all processes)",
        mb(main, "idle_session_memory_bytes"),
        "MiB",
        "<= 10"
    );
    println!(
        "{:<44} {:>10.1} {:<5} {:<12}",
        "idle server RSS (runbox process)",
        mb(main, "idle_server_rss_bytes"),
        "MiB",
        "<= 30"
    );
}

pub fn main(args: BenchArgs) -> anyhow::Result<i32> {
    if let Some(secs) = args.soak {
        return crate::soak::main(secs, args.soak_clients, args.json.as_deref());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let (server, url) = match &args.url {
            Some(u) => (None, u.trim_end_matches('/').to_string()),
            None => {
                let s = start_server(&[])?;
                let u = s.url.clone();
                (Some(s), u)
            }
        };
        eprintln!("benchmarking {url} ...");
        let main = measure(&args, &url, server.as_ref().map(|s| s.child.id()), true).await?;
        drop(server);
        let base = if args.compare_subprocess {
            eprintln!("benchmarking the same workloads without warm pools or compile cache ...");
            let s = start_server(&[
                "--set",
                "pools.enabled=false",
                "--set",
                "compile_cache_mb=0",
                "--set",
                "sessions.warm={}",
            ])?;
            let u = s.url.clone();
            let v = measure(&args, &u, Some(s.child.id()), true).await?;
            Some(v)
        } else {
            None
        };
        println!("sandbox in force: {}", main["sandbox"]);
        print_table(&main, base.as_ref());
        if let Some(path) = &args.json {
            let doc = json!({"runbox": main, "no_pool": base});
            std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
            eprintln!("figures written to {}", path.display());
        }
        Ok(0)
    })
}
