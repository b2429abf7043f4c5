//! DNS rebinding defence for the keyless mode. Without keys the server trusts whoever can reach its loopback
//! address; a web page whose name an attacker re-points at 127.0.0.1 can reach it too, from the victim's browser,
//! but its requests carry the attacker's name in `Host`. So in keyless mode only loopback `Host` values
//! (`localhost`, `127.x.y.z`, `[::1]`, any port) and the configured `allowed_hosts` are served; others get a JSON
//! 421. With keys every request must present one, which a rebinding page does not have, and `Host` is not checked.
//! A request without `Host` (not from a browser) is served.
//!
//! The same middleware stops cross-site requests in keyless mode. A page on any site may send a "simple" POST
//! (a `text/plain` or form body needs no CORS preflight) to `127.0.0.1`; the JSON routes refuse such bodies, but the
//! Judge0 and Piston routes read them as their incumbents do. So a request that is not a GET, HEAD or OPTIONS and
//! carries an `Origin` the API does not allow (the rule `/ws` applies: same origin, loopback pages, `cors_origins`)
//! gets a JSON 403 `origin_not_allowed`. With keys a page cannot present one without a preflight.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// A `Host` value as (host, port): the host without brackets, a trailing dot or case; None when malformed.
fn split(value: &str) -> Option<(String, Option<&str>)> {
    let value = value.trim();
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        match after {
            "" => (inside, None),
            _ => (inside, Some(after.strip_prefix(':').filter(|p| is_port(p))?)),
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) if is_port(port) && !host.contains(':') => (host, Some(port)),
            Some(_) => return None,
            None => (value, None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    (!host.is_empty()).then_some((host, port))
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a keyless server serves a request with this `Host` value. An `allowed` entry with a port matches that
/// port only; one without matches any port.
pub fn host_allowed(value: &str, allowed: &[String]) -> bool {
    let Some((host, port)) = split(value) else {
        return false;
    };
    if host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    allowed.iter().any(|entry| match split(entry) {
        Some((h, None)) => h == host,
        Some((h, Some(p))) => h == host && Some(p) == port,
        None => false,
    })
}

/// The middleware: refuses, in keyless mode, a request whose `Host` is neither loopback nor configured.
pub async fn check_host(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if state.admission.auth_required() {
        return next.run(request).await;
    }
    let host = match request.headers().get(header::HOST) {
        Some(v) => Some(v.to_str().unwrap_or("\u{0}").to_string()),
        None => request.uri().authority().map(|a| a.as_str().to_string()),
    };
    match host {
        Some(h) if !host_allowed(&h, &state.config.allowed_hosts) => {
            state.metrics.record_rejection("host_not_allowed");
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "host_not_allowed",
                "without API keys this server answers only to loopback host names and those in allowed_hosts",
            )
            .into_response()
        }
        _ if cross_site_write(&request, &state.config.cors_origins) => {
            state.metrics.record_rejection("origin_not_allowed");
            ApiError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "without API keys this server takes requests that change or run anything only from its own pages, \
                 pages on loopback and the origins in cors_origins",
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

/// Whether `request` writes (any method but GET, HEAD, OPTIONS) from a browser page whose origin may not use the API.
fn cross_site_write(request: &Request, cors_origins: &[String]) -> bool {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return false; // not a browser's cross-origin request
    };
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    let list = crate::origins::AllowList::new(cors_origins);
    !crate::origins::websocket_allowed(origin.to_str().unwrap_or("null"), host, &list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_pass_with_any_port_and_others_only_when_configured() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.9.8.7:1",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(host_allowed(ok, &[]), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1",
            "[::2]:80",
            "",
            "localhost:http",
            "[::1]x",
        ] {
            assert!(!host_allowed(bad, &[]), "{bad}");
        }
        let allowed = vec!["runbox.lan".to_string(), "box.internal:9000".to_string()];
        assert!(host_allowed("runbox.lan:8080", &allowed));
        assert!(host_allowed("RUNBOX.LAN", &allowed));
        assert!(host_allowed("box.internal:9000", &allowed));
        assert!(!host_allowed("box.internal:9001", &allowed));
        assert!(!host_allowed("evil.example", &allowed));
    }
}
