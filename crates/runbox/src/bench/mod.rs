//! `runbox bench`: measures what the speed targets of issue 15 name, end to end over HTTP on loopback, each next
//! to an unsandboxed baseline measured in the same run: the same programs (Python `print(1)`, Node
//! `console.log(1)`, Bash `echo 1`, a compiled C binary run again) started as plain child processes by this binary
//! (`baseline.rs`). For each: p50 and p99 back to back, throughput with p50/p99 at each concurrency (1 and 16 by
//! default) and the CPU spent per run by every process involved (`account.rs` says how it is counted); then C's
//! first compiles, Python session start, round trip and idle memory (RSS sum and the machine's MemAvailable drop
//! per session). It prints the machine, the protections in force, every figure with its ratio to the baseline and
//! the targets met or not, and writes it all as JSON with `--json`. Counts and times are bounded by flags;
//! `--quick` is a short run for CI.

mod account;
mod baseline;
mod drive;
mod report;
mod sessions;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use runbox_sandbox::cgroup::CgroupVersion;
use serde_json::{json, Value};

use account::{CpuMeter, HostGroup};
use drive::Target;

#[derive(Args)]
pub struct BenchArgs {
    /// Benchmark a running server instead of starting one (no CPU figures for runbox then).
    #[arg(long)]
    url: Option<String>,
    /// Back-to-back samples per latency figure (half for Node).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(5..=10_000))]
    samples: u64,
    /// Seconds of load per concurrency level, per workload, for runbox and for the baseline each.
    #[arg(long, default_value_t = 5.0)]
    duration_s: f64,
    /// Concurrency levels for the throughput runs (each at most 256).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Idle Python sessions to hold open for the memory figures.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    sessions: u64,
    /// The workloads to measure (python, javascript, bash, c); all four by default.
    #[arg(long, value_delimiter = ',', default_value = "python,javascript,bash,c")]
    workloads: Vec<String>,
    /// A setting for the server the bench starts, as `serve --set` takes it (repeatable): to measure a lever,
    /// e.g. `--server-set pools.zygote=false` (a map such as `pools.min.<language>`
    /// replaces the whole map).
    #[arg(long, value_name = "KEY=VALUE")]
    server_set: Vec<String>,
    /// A short run (20 samples, 1 s per load level, 5 sessions) for CI and quick checks.
    #[arg(long)]
    quick: bool,
    /// Instead of the figures: a soak of this many seconds (a mix at capacity, then proof that nothing leaked;
    /// exits 1 on any error or leak). Always on a server of its own.
    #[arg(long, value_name = "SECS")]
    soak: Option<u64>,
    /// Concurrent clients of the soak (default: eight per core).
    #[arg(long)]
    soak_clients: Option<usize>,
}

impl BenchArgs {
    fn samples(&self) -> usize {
        if self.quick {
            20
        } else {
            self.samples as usize
        }
    }

    fn duration(&self) -> f64 {
        if self.quick {
            1.0
        } else {
            self.duration_s
        }
    }

    fn sessions(&self) -> usize {
        if self.quick {
            5
        } else {
            self.sessions as usize
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.duration_s > 0.0 && self.duration_s <= 120.0,
            "--duration-s must be in (0, 120]"
        );
        anyhow::ensure!(
            !self.concurrency.is_empty() && self.concurrency.iter().all(|&c| (1..=256).contains(&c)),
            "--concurrency levels must be 1 to 256"
        );
        let known = ["python", "javascript", "bash", "c"];
        if let Some(w) = self.workloads.iter().find(|w| !known.contains(&w.as_str())) {
            anyhow::bail!("unknown workload {w:?} (known: {})", known.join(", "));
        }
        Ok(())
    }
}

/// A server this benchmark started, in a CPU-counting cgroup of the bench's and with a cgroup parent of its own;
/// stopped on drop, and its groups removed.
struct Server {
    child: Child,
    url: String,
    host_group: Option<HostGroup>,
    /// The sandboxes' parent group in the CPU-counting hierarchy.
    sandbox_parent: Option<PathBuf>,
    parent_name: String,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // The parent groups the server made for this bench (empty once it is gone).
        let host = runbox_sandbox::cgroup::detect();
        for root in host.hierarchies() {
            let _ = std::fs::remove_dir(root.join(&self.parent_name));
        }
    }
}

fn start_server(sessions: usize, more: &[String]) -> anyhow::Result<Server> {
    let data = tempfile::tempdir()?;
    let parent_name = format!("runbox-bench-{}", std::process::id());
    let mut settings = vec![
        format!("aggregate.cgroup_parent={parent_name}"),
        format!("sessions.max_per_owner={}", sessions + 16),
    ];
    settings.extend(more.iter().cloned());
    let mut extra = Vec::new();
    for s in &settings {
        extra.extend(["--set", s.as_str()]);
    }
    let host_group = HostGroup::create(&format!("runbox-bench-{}-host", std::process::id()));
    let spawn = || spawn_serve(data.path(), &extra, Stdio::null());
    let (child, url) = match &host_group {
        Some(g) => g.spawn_inside(spawn)?,
        None => spawn()?,
    };
    let sandbox_parent = account::cpu_hierarchy().map(|(root, _)| root.join(&parent_name));
    Ok(Server {
        child,
        url,
        host_group,
        sandbox_parent,
        parent_name,
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
        // Quiet by default; `RUNBOX_BENCH_SERVER_LOG=debug` gives the server's own log when a run goes wrong.
        .env(
            "RUNBOX_LOG",
            std::env::var("RUNBOX_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
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

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    Some(kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok()? * 1024)
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    u64::from_le_bytes(b)
}

/// The four workloads of the issue: (id, name, language, code, expected stdout).
fn workloads() -> Vec<(&'static str, &'static str, String, &'static str)> {
    let c = format!(
        "#include <stdio.h>\n// bench {}\nint main(void) {{ puts(\"1\"); return 0; }}\n",
        std::process::id()
    );
    vec![
        ("python", "Python print(1)", "print(1)\n".into(), "1\n"),
        ("javascript", "Node console.log(1)", "console.log(1)\n".into(), "1\n"),
        ("bash", "Bash echo 1", "echo 1\n".into(), "1\n"),
        ("c", "C cached binary", c, "1\n"),
    ]
}

/// Every figure: each workload on runbox and on the baseline, interleaved (the machine's other load hits both
/// alike), then C's first compiles and the session figures.
async fn measure(args: &BenchArgs, base: &str, server: Option<&Server>) -> anyhow::Result<report::Results> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .build()?;
    let exec = format!("{base}/execute");
    let idle_rss = server.and_then(|s| rss_of(s.child.id()));
    let catalogue = runbox_lang::Catalogue::load(None)?;
    let scratch = tempfile::tempdir()?;
    let runbox_meter = match server {
        Some(s) => CpuMeter::Server {
            pid: s.child.id(),
            host_group: s.host_group.as_ref().map(|g| g.dir.clone()),
            sandboxes: s.sandbox_parent.clone(),
            version: s.host_group.as_ref().map(|g| g.version()).unwrap_or(CgroupVersion::V1),
        },
        None => CpuMeter::None,
    };
    let (samples, secs) = (args.samples(), args.duration());
    // Give the pools time to fill before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut results = Vec::new();
    for (id, name, code, expect) in workloads()
        .into_iter()
        .filter(|w| args.workloads.iter().any(|x| x == w.0))
    {
        eprintln!("  {name} ...");
        let local = baseline::target(&catalogue, scratch.path(), id, &code, expect)?;
        let http = Target::Http {
            client: client.clone(),
            url: exec.clone(),
            body: json!({"language": id, "code": code}),
            expect: expect.into(),
        };
        let n = if id == "javascript" {
            samples.div_ceil(2)
        } else {
            samples
        };
        let base_seq = drive::sequential(&local, n).await?;
        let box_seq = drive::sequential(&http, n).await?;
        let (mut base_loads, mut box_loads) = (Vec::new(), Vec::new());
        for &c in &args.concurrency {
            base_loads.push(drive::load(&local, c, secs, &CpuMeter::Local).await);
            box_loads.push(drive::load(&http, c, secs, &runbox_meter).await);
        }
        results.push(report::Workload {
            id,
            name,
            runbox: report::Figures {
                sequential: box_seq,
                loads: box_loads,
            },
            baseline: report::Figures {
                sequential: base_seq,
                loads: base_loads,
            },
        });
    }

    eprintln!("  C first compiles, sessions ...");
    let mut c_first = Vec::new();
    for i in 0..3 {
        let code = format!(
            "#include <stdio.h>\n// {}-{i}-{}\nint main(void) {{ puts(\"1\"); return 0; }}\n",
            std::process::id(),
            rand_u64()
        );
        let t = Target::Http {
            client: client.clone(),
            url: exec.clone(),
            body: json!({"language": "c", "code": code}),
            expect: "1\n".into(),
        };
        c_first.push(t.once().await?);
    }
    let sessions = sessions::measure(&client, base, args.sessions(), samples).await?;
    let health: Value = client.get(format!("{base}/health")).send().await?.json().await?;
    let targets = report::targets(&results, &sessions);
    Ok(report::Results {
        machine: account::machine(),
        protections: health["sandbox"].clone(),
        server_settings: args.server_set.clone(),
        workloads: results,
        c_first_compile: drive::latency(c_first),
        sessions,
        idle_server_rss_bytes: idle_rss,
        targets,
    })
}

pub fn main(args: BenchArgs) -> anyhow::Result<i32> {
    if let Some(secs) = args.soak {
        return crate::soak::main(secs, args.soak_clients, args.json.as_deref());
    }
    args.check()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let server = match &args.url {
            Some(_) => None,
            None => Some(start_server(args.sessions(), &args.server_set)?),
        };
        let url = match (&args.url, &server) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(s)) => s.url.clone(),
            (None, None) => unreachable!("a server was started"),
        };
        eprintln!("benchmarking {url} against the unsandboxed baseline ...");
        let results = measure(&args, &url, server.as_ref()).await?;
        drop(server);
        report::print(&results);
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
            eprintln!("figures written to {}", path.display());
        }
        Ok(0)
    })
}
