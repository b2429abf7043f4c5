//! Python session figures: how fast a session is ready, a cell's round trip, and what an idle session costs in
//! memory, two ways: the sum of the RSS of every process it holds (the server's `memory_bytes`, which counts
//! shared pages once per session) and the drop of the machine's `MemAvailable` per session while N idle sessions
//! are open (what the machine really gives up, shared pages counted once; the warm-session set's refill is in it).

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::account::meminfo_kb;
use super::drive::{latency, post, Latency};

#[derive(Debug, Clone, Serialize)]
pub struct SessionFigures {
    pub sessions: usize,
    pub create: Latency,
    pub round_trip: Latency,
    pub rss_sum_bytes_each: f64,
    pub mem_available_drop_bytes_each: Option<f64>,
}

async fn open(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let s = post(client, &format!("{base}/sessions"), &json!({"language": "python"})).await?;
    Ok(s["id"].as_str().unwrap_or_default().to_string())
}

async fn close_all(client: &reqwest::Client, base: &str, ids: &[String]) {
    for id in ids {
        let _ = client.delete(format!("{base}/sessions/{id}")).send().await;
    }
}

pub async fn measure(client: &reqwest::Client, base: &str, n: usize, samples: usize) -> anyhow::Result<SessionFigures> {
    // A first round lets the warm-session set adapt to the demand, as it would on a server under steady load.
    let first: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..n.min(10) {
            ids.push(open(client, base).await?);
        }
        ids
    };
    close_all(client, base, &first).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let available_before = meminfo_kb("MemAvailable");
    let mut create_ms = Vec::new();
    let mut ids = Vec::new();
    let result = async {
        for _ in 0..n {
            let t = Instant::now();
            ids.push(open(client, base).await?);
            create_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let cell = format!("{base}/sessions/{}/execute", ids[0]);
        post(client, &cell, &json!({"code": "x = 0"})).await?;
        let mut rt = Vec::new();
        for _ in 0..samples {
            let t = Instant::now();
            post(client, &cell, &json!({"code": "x += 1"})).await?;
            rt.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        // Let the warm set refill and the sessions settle before reading memory.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let available_after = meminfo_kb("MemAvailable");
        let mut rss = 0.0;
        for id in &ids {
            let info: Value = client.get(format!("{base}/sessions/{id}")).send().await?.json().await?;
            rss += info["memory_bytes"].as_u64().unwrap_or(0) as f64;
        }
        let drop = available_before
            .zip(available_after)
            .map(|(b, a)| (b as f64 - a as f64) * 1024.0 / n as f64);
        anyhow::Ok(SessionFigures {
            sessions: n,
            create: latency(create_ms),
            round_trip: latency(rt),
            rss_sum_bytes_each: rss / n as f64,
            mem_available_drop_bytes_each: drop,
        })
    }
    .await;
    close_all(client, base, &ids).await;
    result
}
