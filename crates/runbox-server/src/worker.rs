//! Runs queued async executions, a bounded number at a time, and delivers their results to callback URLs.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::api::ExecuteBody;
use crate::auth::Caller;
use crate::handlers::execute::{admit, run_admitted};
use crate::state::AppState;

/// Whether a host names a loopback, private, link-local or otherwise internal address.
pub fn is_private_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost") || host.ends_with(".internal") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64
        }
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(|v4| is_private_host(&v4.to_string()))
        }
        Err(_) => false,
    }
}

/// The worker loop: claims queued jobs while there is capacity, forever (until the runtime stops).
pub async fn run(state: Arc<AppState>) {
    let mut purge_every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = state.worker_wakeup.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = purge_every.tick() => {
                let _ = state.jobs.purge(state.config.retention_hours as i64 * 3_600_000);
            }
        }
        while !state.draining.load(std::sync::atomic::Ordering::Relaxed) && state.job_slots.available_permits() > 0 {
            let Ok(Some(job)) = state.jobs.claim_next() else { break };
            let slot = state.job_slots.clone().acquire_owned().await.expect("never closed");
            let state = state.clone();
            tokio::spawn(async move {
                run_job(&state, job).await;
                drop(slot);
                state.wake_worker();
            });
        }
    }
}

async fn run_job(state: &Arc<AppState>, job: crate::jobs::Claimed) {
    let outcome: Result<serde_json::Value, serde_json::Value> = async {
        let body: ExecuteBody = serde_json::from_str(&job.request)
            .map_err(|e| serde_json::json!({"code": "internal_error", "message": e.to_string()}))?;
        let to_json =
            |e: crate::error::ApiError| serde_json::json!({"code": e.code, "message": e.message, "details": e.details});
        let req = body.into_request(&state.config.limits).map_err(to_json)?;
        let caller = Caller {
            owner: job.owner.clone(),
            key: None,
        };
        let permit = admit(state, &caller, &req).await.map_err(to_json)?;
        state.register_job(&job.id, permit.cancel.clone());
        let result = run_admitted(state, permit, req, None, |_| true).await;
        state.unregister_job(&job.id);
        let result = result.map_err(to_json)?;
        serde_json::to_value(result)
            .map_err(|e| serde_json::json!({"code": "internal_error", "message": e.to_string()}))
    }
    .await;
    let (result, error) = match &outcome {
        Ok(r) => (Some(r.to_string()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    if state.draining.load(std::sync::atomic::Ordering::Relaxed)
        && outcome.as_ref().is_ok_and(|r| r["status"] == "killed")
    {
        // Cancelled by shutdown, not by its owner: it runs again after the restart.
        let _ = state.jobs.requeue_interrupted();
        return;
    }
    if let Err(e) = state.jobs.finish(&job.id, result.as_deref(), error.as_deref()) {
        tracing::error!(job = %job.id, error = %e, "cannot store a job's result");
        return;
    }
    if let Some(url) = job.callback_url {
        if let Ok(Some(view)) = state.jobs.get(&job.id, &job.owner) {
            deliver(state, &url, &job.owner, &view).await;
        }
    }
}

/// POSTs the record to the callback URL, retrying with exponential backoff a bounded number of times. A Judge0
/// submission is delivered as Judge0 does it instead: its record (default fields, base64) by PUT.
pub async fn deliver(state: &Arc<AppState>, url: &str, owner: &str, view: &crate::jobs::JobView) {
    let judge0 = crate::compat::judge0::callback_body(state, owner, &view.id).await;
    let Some(client) = callback_client(url, state.config.callback_allow_private).await else {
        tracing::warn!(job = %view.id, "callback refused: the URL resolves to a loopback or private address");
        return;
    };
    let attempts = state.config.callback_retries + 1;
    for attempt in 0..attempts {
        let request = match &judge0 {
            Some(record) => client.put(url).json(record),
            None => client.post(url).json(view),
        };
        match request.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(job = %view.id, status = %r.status(), attempt, "callback refused"),
            Err(e) => tracing::warn!(job = %view.id, error = %e, attempt, "callback failed"),
        }
        if attempt + 1 < attempts {
            tokio::time::sleep(Duration::from_millis(500 * (1 << attempt.min(6)))).await;
        }
    }
}

/// A client for one callback URL. A host name is resolved here, every address it resolves to must be public
/// (unless private ones are allowed), and the client is pinned to those addresses, so that a second lookup
/// cannot point it elsewhere (DNS rebinding). Redirects are not followed.
async fn callback_client(url: &str, allow_private: bool) -> Option<reqwest::Client> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_string();
    let port = parsed.port_or_known_default()?;
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    if host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_err()
    {
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port)).await.ok()?.collect();
        if addrs.is_empty() || (!allow_private && addrs.iter().any(|a| is_private_host(&a.ip().to_string()))) {
            return None;
        }
        builder = builder.resolve_to_addrs(&host, &addrs);
    } else if !allow_private && is_private_host(&host) {
        return None;
    }
    builder.build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_are_refused() {
        assert!(callback_client("http://localhost:9/x", false).await.is_none());
        assert!(callback_client("http://127.0.0.1:9/x", false).await.is_none());
        assert!(callback_client("http://localhost:9/x", true).await.is_some());
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for h in [
            "localhost",
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.169.254",
            "[::1]",
            "0.0.0.0",
            "100.64.0.1",
            "[fd00::1]",
        ] {
            assert!(is_private_host(h), "{h}");
        }
        for h in ["example.com", "8.8.8.8", "[2001:db8::1]"] {
            assert!(!is_private_host(h), "{h}");
        }
    }
}
