//! The bench's results: the figures of each workload for runbox and the baseline, the targets (every one a
//! ratio to the same run's baseline, or an absolute where the issue names one) checked against them, and the table
//! printed from both.

use serde::Serialize;
use serde_json::Value;

use super::account::Machine;
use super::drive::{Latency, Load};
use super::sessions::SessionFigures;

#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub sequential: Latency,
    pub loads: Vec<Load>,
}

impl Figures {
    /// The load at `concurrency`, or at the highest measured.
    fn load_at(&self, concurrency: usize) -> Option<&Load> {
        self.loads
            .iter()
            .find(|l| l.concurrency == concurrency)
            .or_else(|| self.loads.iter().max_by_key(|l| l.concurrency))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub id: &'static str,
    pub name: &'static str,
    pub runbox: Figures,
    pub baseline: Figures,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub machine: Machine,
    /// The server's `/health` `sandbox`: every protection in force.
    pub protections: Value,
    /// Settings given to the server with `--server-set`.
    pub server_settings: Vec<String>,
    pub workloads: Vec<Workload>,
    pub c_first_compile: Latency,
    pub sessions: SessionFigures,
    pub idle_server_rss_bytes: Option<u64>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub figure: String,
    pub value: f64,
    /// `<=` or `>=`.
    pub op: &'static str,
    pub target: f64,
    pub unit: &'static str,
    pub met: bool,
}

fn target(figure: String, value: f64, op: &'static str, target: f64, unit: &'static str) -> Target {
    let met = match op {
        "<=" => value <= target,
        _ => value >= target,
    };
    Target {
        figure,
        value,
        op,
        target,
        unit,
        met,
    }
}

/// The targets, against these figures.
pub fn targets(workloads: &[Workload], sessions: &SessionFigures) -> Vec<Target> {
    let mut out = Vec::new();
    for w in workloads {
        let (p50, tput) = match w.id {
            "python" | "javascript" => (1.0 / 8.0, 4.0),
            _ => (1.0, 1.5),
        };
        let ratio = w.runbox.sequential.p50_ms / w.baseline.sequential.p50_ms;
        out.push(target(
            format!("{} p50, ratio to baseline", w.name),
            ratio,
            "<=",
            p50,
            "x",
        ));
        if let (Some(r), Some(b)) = (w.runbox.load_at(16), w.baseline.load_at(16)) {
            let name = format!("{} throughput at concurrency {}, ratio", w.name, r.concurrency);
            out.push(target(name, r.runs_per_s / b.runs_per_s, ">=", tput, "x"));
        }
    }
    if let Some(py) = workloads.iter().find(|w| w.id == "python") {
        let s = &py.runbox.sequential;
        out.push(target(
            "Python p99 / p50, back to back".into(),
            s.p99_ms / s.p50_ms,
            "<=",
            3.0,
            "x",
        ));
        if let Some(cpu) = py.runbox.load_at(16).and_then(|l| l.cpu_ms_per_run) {
            out.push(target(
                "Python print(1) CPU per run (concurrency 16)".into(),
                cpu,
                "<=",
                2.5,
                "ms",
            ));
        }
    }
    if let Some(drop) = sessions.mem_available_drop_bytes_each {
        let name = format!(
            "idle Python session, MemAvailable drop each ({} sessions)",
            sessions.sessions
        );
        out.push(target(name, drop / 1048576.0, "<=", 4.0, "MiB"));
    }
    out
}

fn ratio(a: f64, b: f64) -> String {
    let r = a / b;
    if !r.is_finite() {
        return String::new();
    }
    format!("{r:.3}x")
}

pub fn print(r: &Results) {
    let m = &r.machine;
    println!(
        "machine: {} cores ({}), kernel {}, {:.1} GiB, cgroups {} (runbox uses {}), load average at start {}, {} build",
        m.cores, m.cpu_model, m.kernel, m.memory_gib, m.cgroup_mounts, m.cgroup_used, m.load_average_at_start, m.build
    );
    println!("protections in force: {}", r.protections);
    if !r.server_settings.is_empty() {
        println!("server settings: {}", r.server_settings.join(" "));
    }
    println!("baseline: the same programs as plain child processes of this binary (no sandbox, no pools, no HTTP)");
    println!();
    println!(
        "{:<22} {:<26} {:>12} {:>12} {:>9}",
        "workload", "figure", "runbox", "baseline", "ratio"
    );
    for w in &r.workloads {
        let (a, b) = (&w.runbox.sequential, &w.baseline.sequential);
        let row = |fig: &str, x: f64, y: f64, unit: &str| {
            println!(
                "{:<22} {:<26} {:>9.2} {unit:<2} {:>9.2} {unit:<2} {:>9}",
                w.name,
                fig,
                x,
                y,
                ratio(x, y)
            );
        };
        row("p50, back to back", a.p50_ms, b.p50_ms, "ms");
        row("p99, back to back", a.p99_ms, b.p99_ms, "ms");
        for (x, y) in w.runbox.loads.iter().zip(&w.baseline.loads) {
            let c = x.concurrency;
            row(&format!("runs/s, concurrency {c}"), x.runs_per_s, y.runs_per_s, "/s");
            row(&format!("p50, concurrency {c}"), x.p50_ms, y.p50_ms, "ms");
            row(&format!("p99, concurrency {c}"), x.p99_ms, y.p99_ms, "ms");
            if let (Some(xc), Some(yc)) = (x.cpu_ms_per_run, y.cpu_ms_per_run) {
                row(&format!("CPU per run, conc. {c}"), xc, yc, "ms");
                let parts = |l: &Load| {
                    l.cpu_parts_ms_per_run
                        .iter()
                        .map(|(n, v)| format!("{n} {v:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!("{:<22}   runbox: {}; baseline: {}", "", parts(x), parts(y));
            }
            if x.errors + y.errors > 0 {
                println!("{:<22}   errors: runbox {}, baseline {}", "", x.errors, y.errors);
            }
        }
    }
    println!();
    let s = &r.sessions;
    println!(
        "C, first compile and run (runbox): p50 {:.1} ms over {} programs",
        r.c_first_compile.p50_ms, r.c_first_compile.samples
    );
    println!(
        "Python session ready: p50 {:.2} ms, p99 {:.2} ms; cell round trip (x += 1): p50 {:.2} ms, p99 {:.2} ms",
        s.create.p50_ms, s.create.p99_ms, s.round_trip.p50_ms, s.round_trip.p99_ms
    );
    println!(
        "idle Python session ({} open): RSS sum {:.1} MiB each; MemAvailable drop {} each",
        s.sessions,
        s.rss_sum_bytes_each / 1048576.0,
        s.mem_available_drop_bytes_each
            .map(|b| format!("{:.1} MiB", b / 1048576.0))
            .unwrap_or_else(|| "unknown".into())
    );
    if let Some(rss) = r.idle_server_rss_bytes {
        println!("idle server RSS (runbox process): {:.1} MiB", rss as f64 / 1048576.0);
    }
    println!();
    println!("{:<62} {:>9} {:>12}  met", "target (issue 15)", "value", "target");
    for t in &r.targets {
        let by = match (t.met, t.op) {
            (true, _) => String::new(),
            (false, "<=") => format!(" (missed: {:.1}x over)", t.value / t.target),
            (false, _) => format!(" (missed: {:.0}% of it)", 100.0 * t.value / t.target),
        };
        println!(
            "{:<62} {:>7.3}{:<2} {:>2} {:>7.3}{:<2}  {}{by}",
            t.figure,
            t.value,
            t.unit,
            t.op,
            t.target,
            t.unit,
            if t.met { "yes" } else { "no" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(p50: f64, runs_per_s: f64, cpu: f64) -> Figures {
        Figures {
            sequential: Latency {
                p50_ms: p50,
                p99_ms: p50 * 2.0,
                samples: 10,
            },
            loads: vec![Load {
                concurrency: 16,
                runs: 10,
                runs_per_s,
                p50_ms: p50,
                p99_ms: p50,
                errors: 0,
                cpu_ms_per_run: Some(cpu),
                cpu_parts_ms_per_run: Vec::new(),
            }],
        }
    }

    /// Each target is a ratio to the same run's baseline (or the absolute), judged in the right direction.
    #[test]
    fn targets_are_ratios_to_the_baseline_judged_in_their_direction() {
        let workloads = vec![
            Workload {
                id: "python",
                name: "Python print(1)",
                runbox: figures(2.0, 400.0, 2.0),
                baseline: figures(20.0, 80.0, 18.0),
            },
            Workload {
                id: "bash",
                name: "Bash echo 1",
                runbox: figures(4.0, 100.0, 8.0),
                baseline: figures(2.0, 400.0, 1.5),
            },
        ];
        let sessions = SessionFigures {
            sessions: 10,
            create: latency_of(1.0),
            round_trip: latency_of(0.2),
            rss_sum_bytes_each: 15.0 * 1048576.0,
            mem_available_drop_bytes_each: Some(6.0 * 1048576.0),
        };
        let t = targets(&workloads, &sessions);
        let met = |prefix: &str| t.iter().find(|t| t.figure.starts_with(prefix)).unwrap().met;
        assert!(met("Python print(1) p50")); // 0.1x <= 1/8
        assert!(met("Python print(1) throughput")); // 5x >= 4x
        assert!(!met("Bash echo 1 p50")); // 2x > 1x
        assert!(!met("Bash echo 1 throughput")); // 0.25x < 1.5x
        assert!(met("Python p99 / p50")); // 2 <= 3
        assert!(met("Python print(1) CPU")); // 2 ms <= 2.5 ms
        assert!(!met("idle Python session")); // 6 MiB > 4 MiB
        assert_eq!(t.len(), 7, "{t:#?}");
    }

    fn latency_of(ms: f64) -> Latency {
        Latency {
            p50_ms: ms,
            p99_ms: ms,
            samples: 1,
        }
    }
}
