//! Runs queued async executions, a bounded number at a time, and delivers their results to callback URLs.
//! With a shared store (PostgreSQL), a running job's lease is renewed while it runs ([`keep_lease`]), and the run
//! stops as soon as the job is no longer this node's (cancelled or deleted from any node, or its lease lost).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::ExecuteBody;
use crate::handlers::execute::{reserve, run_admitted, Admitted};
use crate::state::AppState;

/// Whether a host names a loopback, private, link-local, multicast or otherwise internal address, or one of this
/// host's own interface addresses. A name is judged by its spelling only here (`localhost`); what it resolves to
/// is judged by [`callback_client`].
pub fn is_private_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost") || host.ends_with(".internal") {
        return true;
    }
    host.parse::<IpAddr>()
        .is_ok_and(|ip| is_internal_ip(ip) || own_addresses().is_none_or(|own| own.contains(&ip)))
}

/// Addresses no callback may reach: loopback, private, shared (CGNAT), link-local, unspecified, broadcast,
/// multicast, reserved and benchmarking ranges, and IPv6 forms that embed such an IPv4 address.
pub fn is_internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || a == 0 // "this network": 0.x.y.z reaches the host itself on Linux
                || a >= 240 // reserved
                || (a == 100 && (b & 0xc0) == 64) // shared address space
                || (a == 198 && (b & 0xfe) == 18) // benchmarking
        }
        IpAddr::V6(ip) => {
            let s = ip.segments();
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || ip.to_ipv4_mapped().is_some_and(|v4| is_internal_ip(IpAddr::V4(v4)))
                // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) forms of an IPv4 address.
                || (s[..6] == [0; 6] && is_internal_ip(IpAddr::V4(ip.to_ipv4().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED))))
                || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                    && is_internal_ip(IpAddr::V4(std::net::Ipv4Addr::from(
                        (u32::from(s[6]) << 16) | u32::from(s[7]),
                    ))))
        }
    }
}

/// Every address of this host's own interfaces (a callback there reaches the host's own services, whatever range
/// it is in); None when they cannot be listed, and then every address is treated as the host's own (fail closed).
pub fn own_addresses() -> Option<Vec<IpAddr>> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    Some(
        addrs
            .filter_map(|a| a.address)
            .filter_map(|s| {
                s.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })
            .collect(),
    )
}

/// Whether a callback may go to `ip`: not internal, not one of `own` (None: unknown, so refused).
fn callback_may_reach(ip: IpAddr, own: Option<&[IpAddr]>) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    !is_internal_ip(ip) && own.is_some_and(|own| !own.contains(&ip))
}

/// The worker loop: claims queued jobs while there is capacity, forever (until the runtime stops).
pub async fn run(state: Arc<AppState>) {
    let mut purge_every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = state.job_runner_wakeup.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = purge_every.tick() => {
                let _ = state.jobs.purge(state.config.retention_hours as i64 * 3_600_000).await;
            }
        }
        // Callbacks another node was to deliver but did not (it stopped): one node takes each.
        while let Ok(Some((id, owner, url))) = state.jobs.claim_orphan_callback().await {
            let state = state.clone();
            tokio::spawn(async move { deliver_claimed(&state, &id, &owner, &url).await });
        }
        // Owners whose key has no free run slot: their jobs stay queued (they are not failed) until one frees.
        let mut skip: Vec<String> = Vec::new();
        for (i, k) in state.keys.iter().enumerate() {
            if state.try_key_slot(Some(i)).is_err() {
                skip.push(k.config.name.clone());
            }
        }
        while !state.draining.load(Ordering::Relaxed) && state.job_slots.available_permits() > 0 {
            let Ok(Some(job)) = state.jobs.claim_next_skipping(&skip).await else {
                break;
            };
            let key = if state.auth_required() {
                state.key_named(&job.owner)
            } else {
                None
            };
            let Ok(key_slot) = state.try_key_slot(key) else {
                // The key's last slot went to another run since the list above was made.
                let _ = state.jobs.unclaim(&job).await;
                skip.push(job.owner);
                continue;
            };
            let slot = state.job_slots.clone().acquire_owned().await.expect("never closed");
            let state = state.clone();
            tokio::spawn(async move {
                run_job(&state, job, key_slot).await;
                drop(slot);
                state.wake_job_runner();
            });
        }
    }
}

/// Runs a claimed job with its key's run slot (taken by the worker loop, so that the key's `max_concurrent`
/// covers async jobs too).
async fn run_job(
    state: &Arc<AppState>,
    job: crate::jobs::Claimed,
    key_slot: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let lost = Arc::new(AtomicBool::new(false));
    let lease = state
        .jobs
        .is_shared()
        .then(|| tokio::spawn(keep_lease(state.clone(), job.clone(), lost.clone())));
    run_claimed(state, &job, key_slot, &lost).await;
    if let Some(lease) = lease {
        lease.abort();
    }
    if lost.load(Ordering::Relaxed) {
        return;
    }
    if let Some(url) = &job.callback_url {
        if state.jobs.claim_callback(&job.id).await.unwrap_or(false) {
            deliver_claimed(state, &job.id, &job.owner, url).await;
        }
    }
}

/// Renews this node's lease on a running job a third of the way through it, for as long as the job runs. When
/// the job is no longer this node's (cancelled or deleted from any node, taken over), or when the lease could not
/// be renewed and is about to expire (the database unreachable: another node may take the job once it does), the
/// run is stopped and its outcome not stored: the job never runs on two nodes at once.
async fn keep_lease(state: Arc<AppState>, job: crate::jobs::Claimed, lost: Arc<AtomicBool>) {
    let lease = Duration::from_millis(state.config.async_lease_ms);
    // Claimed a moment ago: the lease runs from before now.
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(lease / 3).await;
        let asked = Instant::now();
        // A renewal that hangs (a partition) counts as failed: the lease runs out all the same.
        let renewal = tokio::time::timeout(lease / 3, state.jobs.renew(&job))
            .await
            .unwrap_or_else(|_| Err(crate::jobs::JobError::unavailable("the renewal timed out".into())));
        match renewal {
            Ok(true) => renewed = asked,
            Ok(false) => {
                tracing::info!(job = %job.id, "the job is no longer this node's (cancelled, deleted or taken over): stopping its run");
                break;
            }
            Err(e) if renewed.elapsed() >= lease * 2 / 3 => {
                tracing::warn!(job = %job.id, error = %e, "cannot renew a job's lease before it expires: stopping its run");
                break;
            }
            Err(e) => tracing::warn!(job = %job.id, error = %e, "cannot renew a job's lease; retrying"),
        }
    }
    lost.store(true, Ordering::Relaxed);
    // The run may not have registered yet (waiting for a sandbox slot): keep cancelling until it ends.
    loop {
        state.cancel_job(&job.id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Delivers the callback of a job whose delivery this node claimed, then marks it delivered.
async fn deliver_claimed(state: &Arc<AppState>, id: &str, owner: &str, url: &str) {
    if let Ok(Some(view)) = state.jobs.get(id, owner).await {
        deliver(state, url, owner, &view).await;
    }
    if let Err(e) = state.jobs.callback_done(id).await {
        tracing::warn!(job = %id, error = %e, "cannot record a callback as delivered");
    }
}

/// Runs a claimed job and stores its outcome (unless `lost` says it is no longer this node's).
async fn run_claimed(
    state: &Arc<AppState>,
    job: &crate::jobs::Claimed,
    key_slot: Option<tokio::sync::OwnedSemaphorePermit>,
    lost: &AtomicBool,
) {
    let outcome: Result<serde_json::Value, serde_json::Value> = async {
        let body: ExecuteBody = serde_json::from_str(&job.request)
            .map_err(|e| serde_json::json!({"code": "internal_error", "message": e.to_string()}))?;
        let to_json =
            |e: crate::error::ApiError| serde_json::json!({"code": e.code, "message": e.message, "details": e.details});
        let mut req = body
            .into_request(&state.config.limits, state.engine.catalogue())
            .map_err(to_json)?;
        req.tenant = job.owner.clone();
        let prepared = state
            .engine
            .prepare(req)
            .map_err(|e| to_json(crate::error::ApiError::from(e)))?;
        // The key's aggregate caps hold for async runs as for every other run.
        let budget = reserve(state, &job.owner, &prepared).map_err(to_json)?;
        let mut permit = state.acquire_run_with(key_slot).await.map_err(to_json)?;
        permit.owner = job.owner.clone();
        permit.budget = Some(budget);
        state.register_job(&job.id, permit.cancel.clone());
        let result = run_admitted(state, Admitted { permit, prepared }, None, |_| true).await;
        state.unregister_job(&job.id);
        let result = result.map_err(to_json)?;
        serde_json::to_value(result)
            .map_err(|e| serde_json::json!({"code": "internal_error", "message": e.to_string()}))
    }
    .await;
    let killed = outcome.as_ref().is_ok_and(|r| r["status"] == "killed");
    let cap = state.config.async_result_bytes as usize;
    let (result, error, truncated) = match outcome {
        // A result longer than a job may store is cut (its longest strings); one that cannot be cut to fit is
        // replaced by an error saying so. Either way the record stays within what the key's quota reserved.
        Ok(mut r) => match crate::jobs::shrink_result(&mut r, cap) {
            Some((text, cut)) => (Some(text), None, cut),
            None => {
                let e = serde_json::json!({"code": "result_too_large", "message":
                    format!("the result does not fit in the {cap} bytes an async execution stores")});
                (None, Some(e.to_string()), true)
            }
        },
        Err(mut e) => (None, crate::jobs::shrink_result(&mut e, cap).map(|(t, _)| t), false),
    };
    if lost.load(Ordering::Relaxed) {
        // Stopped because the job is no longer this node's: whatever it produced is not its result.
        return;
    }
    if state.draining.load(Ordering::Relaxed) && killed {
        // Cancelled by shutdown, not by its owner: it runs again after the restart (or on another node).
        let _ = state.jobs.unclaim(job).await;
        return;
    }
    // A result that cannot be stored (the data directory's disk is full) is kept here and stored once it can be:
    // the record says `running` meanwhile, and the job keeps its slot. Only a shutdown gives up on it, and then
    // the record is still `running`, so the job runs again after the restart (nothing completed is reported lost).
    let mut backoff = Duration::from_millis(100);
    let mut reported = false;
    while let Err(e) = state
        .jobs
        .finish(job, result.as_deref(), error.as_deref(), truncated)
        .await
    {
        if !reported {
            tracing::error!(job = %job.id, error = %e, disk_full = e.is_disk_full(),
                "cannot store a job's result; keeping it and retrying");
            reported = true;
        }
        if state.draining.load(Ordering::Relaxed) || lost.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    if reported {
        tracing::info!(job = %job.id, "a job's result was stored after all");
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

/// A client for one callback URL. The host is resolved here (a literal address is taken as is), every address
/// must be one a callback may reach (unless the operator allows private ones), and the client is pinned to those
/// addresses, so that a second lookup cannot point it elsewhere (DNS rebinding). Redirects are not followed and
/// no proxy is used (either would send the request somewhere not checked here).
async fn callback_client(url: &str, allow_private: bool) -> Option<reqwest::Client> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str()?.to_string();
    let port = parsed.port_or_known_default()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<std::net::SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port)).await.ok()?.collect(),
    };
    let own = own_addresses();
    if addrs.is_empty() || (!allow_private && !addrs.iter().all(|a| callback_may_reach(a.ip(), own.as_deref()))) {
        return None;
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve_to_addrs(bare, &addrs)
        .build()
        .ok()
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

    #[tokio::test]
    async fn the_hosts_own_interface_addresses_are_refused_whatever_their_range() {
        let own = own_addresses().expect("this host's interfaces can be listed");
        assert!(!own.is_empty());
        for ip in &own {
            let url = match ip {
                IpAddr::V4(v4) => format!("http://{v4}:9/x"),
                IpAddr::V6(v6) => format!("http://[{v6}]:9/x"),
            };
            assert!(callback_client(&url, false).await.is_none(), "{url}");
            assert!(is_private_host(&ip.to_string()), "{ip}");
        }
        // An address in no internal range is still refused when it is one of the host's own.
        let public: IpAddr = "192.0.2.77".parse().unwrap();
        assert!(callback_may_reach(public, Some(&[])));
        assert!(!callback_may_reach(public, Some(&[public])));
        assert!(!callback_may_reach(public, None), "interfaces unknown: refused");
        let mapped: IpAddr = "::ffff:192.0.2.77".parse().unwrap();
        assert!(!callback_may_reach(mapped, Some(&[public])));
    }

    #[tokio::test]
    async fn other_schemes_are_refused() {
        assert!(callback_client("ftp://127.0.0.1/x", true).await.is_none());
        assert!(callback_client("file:///etc/passwd", true).await.is_none());
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
            "224.0.0.1",
            "239.255.255.250",
            "0.1.2.3",
            "240.0.0.1",
            "198.18.0.1",
            "[ff02::1]",
            "[fec0::1]",
            "[::ffff:10.0.0.1]",
            "[::127.0.0.1]",
            "[64:ff9b::a00:1]",
        ] {
            assert!(is_private_host(h), "{h}");
        }
        for h in ["example.com", "8.8.8.8", "[2001:db8::1]"] {
            assert!(!is_private_host(h), "{h}");
        }
    }
}
