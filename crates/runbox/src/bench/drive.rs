//! Drives one workload, the same way for runbox and for the unsandboxed baseline: a run is either one `POST
//! /execute` over HTTP or one plain child process started by this binary. `sequential` measures latency back to
//! back; `load` keeps a number of clients busy for a fixed time and reports throughput, percentiles and the CPU the
//! machine spent per run (read from a `CpuMeter` before and after).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::Value;

use super::account::CpuMeter;

/// One way of running the workload once.
#[derive(Clone)]
pub enum Target {
    /// `POST url` with `body`; the run must end `ok` with `expect` as its stdout.
    Http {
        client: reqwest::Client,
        url: String,
        body: Value,
        expect: String,
    },
    /// A plain child process (no namespaces, no pools), its stdout and stderr piped, like a subprocess service.
    Local {
        argv: Vec<String>,
        env: Vec<(String, String)>,
        dir: PathBuf,
        expect: String,
    },
}

impl Target {
    /// One run; its wall time in ms.
    pub async fn once(&self) -> anyhow::Result<f64> {
        let t = Instant::now();
        match self {
            Target::Http {
                client,
                url,
                body,
                expect,
            } => {
                let v = post(client, url, body).await?;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let stdout = v.get("stdout").and_then(Value::as_str).unwrap_or_default();
                if v.get("status").and_then(Value::as_str) != Some("ok") || stdout != expect {
                    bail!("run failed: {v}");
                }
                Ok(ms)
            }
            Target::Local { argv, env, dir, expect } => {
                let out = tokio::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .current_dir(dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .output()
                    .await
                    .with_context(|| format!("start {}", argv[0]))?;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                if !out.status.success() || out.stdout != expect.as_bytes() {
                    bail!(
                        "{argv:?}: {}: {}{}",
                        out.status,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(ms)
            }
        }
    }
}

pub async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let r = client.post(url).json(body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("{url}: {status}: {v}");
    }
    Ok(v)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub samples: usize,
}

pub fn latency(mut ms: Vec<f64>) -> Latency {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Latency {
        p50_ms: percentile(&ms, 0.5),
        p99_ms: percentile(&ms, 0.99),
        samples: ms.len(),
    }
}

/// `n` runs back to back, after three unmeasured ones.
pub async fn sequential(target: &Target, n: usize) -> anyhow::Result<Latency> {
    for _ in 0..3 {
        target.once().await?;
    }
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        ms.push(target.once().await?);
    }
    Ok(latency(ms))
}

#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub concurrency: usize,
    pub runs: usize,
    pub runs_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
    /// CPU time per completed run, every process the meter covers, in ms; and its parts.
    pub cpu_ms_per_run: Option<f64>,
    pub cpu_parts_ms_per_run: Vec<(String, f64)>,
}

/// `concurrency` clients running the workload back to back for `secs` seconds.
pub async fn load(target: &Target, concurrency: usize, secs: f64, meter: &CpuMeter) -> Load {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let before = meter.sample();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ms, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                match target.once().await {
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
    let after = meter.sample();
    let runs = all.len();
    let lat = latency(all);
    let per_run = |ns: u64| ns as f64 / 1e6 / runs.max(1) as f64;
    let parts: Vec<(String, f64)> = after
        .iter()
        .zip(&before)
        .map(|((name, a), (_, b))| (name.clone(), per_run(a.saturating_sub(*b))))
        .collect();
    Load {
        concurrency,
        runs,
        runs_per_s: runs as f64 / elapsed,
        p50_ms: lat.p50_ms,
        p99_ms: lat.p99_ms,
        errors,
        cpu_ms_per_run: (!parts.is_empty() && runs > 0).then(|| parts.iter().map(|(_, v)| v).sum()),
        cpu_parts_ms_per_run: parts,
    }
}
