//! Callbacks: which URLs an async execution may name (`callback_url`), and delivering its finished record there.
//! A callback is a request the server makes on a client's behalf, so it never reaches loopback, private or the
//! host's own addresses unless the operator allows it, is pinned to the addresses checked, and follows no redirect.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ApiError;
use crate::state::AppState;

/// Validates a callback URL: http(s) only, and not a loopback or private address unless the operator allows it.
pub fn check_callback_url(url: &str, allow_private: bool) -> Result<(), ApiError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| ApiError::invalid_field("callback_url", e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::invalid_field("callback_url", "must be an http or https URL"));
    }
    let host = parsed.host_str().unwrap_or("");
    if !allow_private && is_private_host(host) {
        return Err(ApiError::invalid_field(
            "callback_url",
            "loopback and private addresses are refused (the operator can allow them with callback_allow_private)",
        ));
    }
    Ok(())
}

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
