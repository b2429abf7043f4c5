//! Which web pages may use the API. One list (`cors_origins`) drives both the CORS layer, for `fetch` from other
//! origins, and the `Origin` check on `GET /ws`, which browsers do not subject to CORS: without that check any site
//! a developer visits could open a WebSocket to a key-less server on their loopback and run code
//! (cross-site WebSocket hijacking).
//!
//! A WebSocket handshake is accepted when it carries no `Origin` (not a browser), or its origin is the server's own
//! (same scheme-less host and port as `Host`), a page on loopback (`localhost`, `*.localhost`, `127.0.0.0/8`,
//! `[::1]`), or listed in `cors_origins` (`*` lists every origin). Anything else is refused with 403
//! `origin_not_allowed` before authentication.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use tower_http::cors::{AllowOrigin, CorsLayer, ExposeHeaders};
use url::{Host, Url};

use crate::error::ApiError;
use crate::state::AppState;

/// How long browsers may cache a preflight answer. Chromium caps this at two hours, Firefox at a day.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(7200);

/// The `cors_origins` entry that allows every origin (without credentials: the API uses no cookies).
pub const ANY: &str = "*";

/// An origin in its canonical form (`scheme://host[:port]`, lower case, default port left out), as browsers send
/// it; `None` when `raw` is not an http(s) origin (a path, a query or user info make it something else).
pub fn canonical(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let url = Url::parse(trimmed).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || url.path() != "/"
    {
        return None;
    }
    // `Url` adds the `/` path itself; a path written by hand (even `/`) is not an origin's.
    let without_scheme = trimmed.split_once("://").map_or("", |(_, rest)| rest);
    if without_scheme.contains('/') {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

/// Checks the configured list: `*` alone, or origins as browsers send them.
pub fn validate(origins: &[String]) -> Result<(), String> {
    if origins.iter().any(|o| o.trim() == ANY) {
        if origins.len() > 1 {
            return Err("cors_origins: `*` already allows every origin; list it alone".into());
        }
        return Ok(());
    }
    for o in origins {
        if canonical(o).is_none() {
            return Err(format!(
                "cors_origins: {o:?} is not an origin (scheme://host[:port], http or https, no path)"
            ));
        }
    }
    Ok(())
}

/// The configured allow-list, canonicalised once.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    any: bool,
    origins: Vec<String>,
}

impl AllowList {
    pub fn new(configured: &[String]) -> AllowList {
        AllowList {
            any: configured.iter().any(|o| o.trim() == ANY),
            origins: configured.iter().filter_map(|o| canonical(o)).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.any && self.origins.is_empty()
    }

    /// Whether `origin` (an `Origin` header value) is listed.
    pub fn lists(&self, origin: &str) -> bool {
        self.any || canonical(origin).is_some_and(|o| self.origins.contains(&o))
    }

    /// The CORS layer, none when no origin is configured. Never panics: `*` becomes "any origin".
    pub fn cors_layer(&self) -> Option<CorsLayer> {
        if self.is_empty() {
            return None;
        }
        let allow = if self.any {
            AllowOrigin::any()
        } else {
            let list = self.clone();
            AllowOrigin::predicate(move |origin: &HeaderValue, _| origin.to_str().is_ok_and(|o| list.lists(o)))
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::AUTHORIZATION,
                    HeaderName::from_static("x-api-key"),
                    HeaderName::from_static("x-request-id"),
                ])
                .expose_headers(ExposeHeaders::list([
                    header::LOCATION,
                    header::RETRY_AFTER,
                    HeaderName::from_static("x-request-id"),
                ]))
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }
}

/// Whether a page at `origin` may open a WebSocket to a server reached as `host` (the `Host` header).
pub fn websocket_allowed(origin: &str, host: Option<&str>, list: &AllowList) -> bool {
    if list.lists(origin) {
        return true;
    }
    let Some(url) = canonical(origin).and_then(|o| Url::parse(&o).ok()) else {
        return false; // `null` (sandboxed frames, files) and anything malformed
    };
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if loopback {
        return true;
    }
    // Same origin: the page was served by this server, under the name the browser used to reach it.
    let Some(host) = host else { return false };
    let Ok(server) = Url::parse(&format!("{}://{}", url.scheme(), host.trim())) else {
        return false;
    };
    server.host() == url.host() && server.port_or_known_default() == url.port_or_known_default()
}

/// Extractor for `GET /ws`: refuses a handshake from a page whose origin may not use the API.
pub struct AllowedOrigin;

impl FromRequestParts<Arc<AppState>> for AllowedOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let Some(origin) = parts.headers.get(header::ORIGIN) else {
            return Ok(AllowedOrigin);
        };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()));
        let allowed = origin
            .to_str()
            .is_ok_and(|o| websocket_allowed(o, host, &AllowList::new(&state.config.cors_origins)));
        if allowed {
            return Ok(AllowedOrigin);
        }
        state.metrics.record_rejection("origin_not_allowed");
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "pages from this origin may not open a WebSocket here; add it to cors_origins",
        )
        .with_details(serde_json::json!({ "origin": String::from_utf8_lossy(origin.as_bytes()) })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(origins: &[&str]) -> AllowList {
        AllowList::new(&origins.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn origins_are_canonicalised_as_browsers_send_them() {
        assert_eq!(canonical("HTTPS://A.Example:443").as_deref(), Some("https://a.example"));
        assert_eq!(
            canonical("http://a.example:8080").as_deref(),
            Some("http://a.example:8080")
        );
        assert_eq!(canonical("http://[::1]:3000").as_deref(), Some("http://[::1]:3000"));
        for bad in [
            "null",
            "a.example",
            "ftp://a.example",
            "http://a.example/",
            "http://a.example/app",
            "http://u@a.example",
            "http://a.example?x",
            "*",
        ] {
            assert_eq!(canonical(bad), None, "{bad}");
        }
    }

    #[test]
    fn configured_lists_are_checked() {
        let v = |l: &[&str]| validate(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(v(&[]).is_ok());
        assert!(v(&["*"]).is_ok());
        assert!(v(&["https://a.example", "http://localhost:3000"]).is_ok());
        assert!(v(&["*", "https://a.example"]).unwrap_err().contains("alone"));
        assert!(v(&["a.example"]).unwrap_err().contains("a.example"));
    }

    #[test]
    fn websocket_origins_are_allowed_when_same_loopback_or_listed() {
        let none = list(&[]);
        let host = Some("127.0.0.1:8080");
        // Same origin as the Host the browser used.
        assert!(websocket_allowed("http://127.0.0.1:8080", host, &none));
        assert!(websocket_allowed(
            "http://runbox.internal",
            Some("runbox.internal:80"),
            &none
        ));
        assert!(!websocket_allowed(
            "http://runbox.internal:81",
            Some("runbox.internal"),
            &none
        ));
        // Behind a TLS proxy the browser's Host has no port: the page's scheme says which default applies.
        assert!(websocket_allowed(
            "https://runbox.internal",
            Some("runbox.internal"),
            &none
        ));
        assert!(!websocket_allowed(
            "https://runbox.internal",
            Some("runbox.internal:8080"),
            &none
        ));
        assert!(!websocket_allowed(
            "http://evil.example",
            Some("runbox.internal"),
            &none
        ));
        // Pages on loopback.
        for page in [
            "http://localhost:3000",
            "http://app.localhost",
            "http://127.0.0.2:5173",
            "http://[::1]:1",
        ] {
            assert!(websocket_allowed(page, host, &none), "{page}");
        }
        // Everyone else, and opaque origins, unless listed.
        for page in [
            "https://evil.example",
            "null",
            "http://localhost.evil.example",
            "garbage",
        ] {
            assert!(!websocket_allowed(page, host, &none), "{page}");
        }
        assert!(websocket_allowed(
            "https://app.example",
            host,
            &list(&["https://app.example"])
        ));
        assert!(!websocket_allowed(
            "https://evil.example",
            host,
            &list(&["https://app.example"])
        ));
        assert!(websocket_allowed("https://evil.example", host, &list(&["*"])));
    }
}
