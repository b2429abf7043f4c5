//! Prometheus metrics, kept by hand: a few counters and histograms do not need a metrics framework.

use runbox_engine::sync::LockOrRecover;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    total: u64,
}

#[derive(Default)]
pub struct Metrics {
    executions: Mutex<BTreeMap<(String, String), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    rejected: Mutex<BTreeMap<String, u64>>,
    pub active_runs: AtomicI64,
    pub queued: AtomicI64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock_or_recover()
}

/// Escapes a label value for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    pub fn record_execution(&self, language: &str, status: &str, seconds: f64) {
        *lock(&self.executions)
            .entry((language.to_string(), status.to_string()))
            .or_default() += 1;
        let mut latency = lock(&self.latency);
        let h = latency.entry(language.to_string()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.total += 1;
    }

    /// A finished session cell, labelled `language="session"` and its status as the API spells it.
    pub fn record_cell(&self, status: runbox_engine::sessions::CellStatus, seconds: f64) {
        self.record_execution("session", status.as_str(), seconds);
    }

    pub fn record_rejection(&self, reason: &str) {
        *lock(&self.rejected).entry(reason.to_string()).or_default() += 1;
    }

    /// The text exposition format; `extra` gauges (sessions, pools, jobs) come from the caller.
    pub fn render(&self, extra: &[(&str, &str, i64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP runbox_executions_total Executions finished, by language and status.\n");
        out.push_str("# TYPE runbox_executions_total counter\n");
        for ((lang, status), n) in lock(&self.executions).iter() {
            let _ = writeln!(
                out,
                "runbox_executions_total{{language=\"{}\",status=\"{}\"}} {n}",
                label(lang),
                label(status)
            );
        }
        out.push_str("# HELP runbox_execution_duration_seconds Time from request to result, by language.\n");
        out.push_str("# TYPE runbox_execution_duration_seconds histogram\n");
        for (lang, h) in lock(&self.latency).iter() {
            let lang = label(lang);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "runbox_execution_duration_seconds_bucket{{language=\"{lang}\",le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "runbox_execution_duration_seconds_bucket{{language=\"{lang}\",le=\"+Inf\"}} {}",
                h.total
            );
            let _ = writeln!(
                out,
                "runbox_execution_duration_seconds_sum{{language=\"{lang}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "runbox_execution_duration_seconds_count{{language=\"{lang}\"}} {}",
                h.total
            );
        }
        out.push_str("# HELP runbox_rejected_requests_total Requests refused before running, by reason.\n");
        out.push_str("# TYPE runbox_rejected_requests_total counter\n");
        for (reason, n) in lock(&self.rejected).iter() {
            let _ = writeln!(
                out,
                "runbox_rejected_requests_total{{reason=\"{}\"}} {n}",
                label(reason)
            );
        }
        let gauges = [
            (
                "runbox_active_runs",
                "Sandboxes running now.",
                self.active_runs.load(Ordering::Relaxed),
            ),
            (
                "runbox_queue_depth",
                "Requests waiting for a sandbox slot.",
                self.queued.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges.iter().copied().chain(extra.iter().copied()) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record_execution("python", "ok", 0.003);
        m.record_execution("python", "ok", 0.2);
        m.record_rejection("rate_limited");
        let text = m.render(&[("runbox_sessions", "Open sessions.", 0)]);
        assert!(text.contains("runbox_executions_total{language=\"python\",status=\"ok\"} 2"));
        assert!(text.contains("runbox_execution_duration_seconds_bucket{language=\"python\",le=\"0.005\"} 1"));
        assert!(text.contains("runbox_execution_duration_seconds_bucket{language=\"python\",le=\"0.25\"} 2"));
        assert!(text.contains("runbox_rejected_requests_total{reason=\"rate_limited\"} 1"));
        assert!(text.contains("runbox_sessions 0"));
    }

    #[test]
    fn session_cells_are_labelled_with_the_status_the_api_gives() {
        use runbox_engine::sessions::CellStatus;
        let m = Metrics::default();
        m.record_cell(CellStatus::MemoryLimit, 0.1);
        let text = m.render(&[]);
        assert!(
            text.contains("runbox_executions_total{language=\"session\",status=\"memory_limit\"} 1"),
            "{text}"
        );
        for status in [
            CellStatus::Ok,
            CellStatus::Error,
            CellStatus::Interrupted,
            CellStatus::Timeout,
            CellStatus::Exit,
            CellStatus::MemoryLimit,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}
