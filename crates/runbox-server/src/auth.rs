//! Who is calling. With no keys configured everyone is the anonymous owner (and the server listens on loopback
//! only); with keys, every route but `/health` and the documentation (`/openapi.json`, `/docs`, `/redoc`) needs
//! `Authorization: Bearer KEY` (the scheme in any case) or `X-API-Key: KEY`; any one valid key authenticates, so a
//! stray header does not hide a good one.
//!
//! Browsers cannot set headers on a WebSocket, so the `/ws` handshake also takes the key as a subprotocol: the
//! client offers [`WS_PROTOCOL`] and `runbox.key.` + the key in unpadded base64url (a subprotocol must be an HTTP
//! token, which an arbitrary key is not). The server answers with [`WS_PROTOCOL`] alone: the key is never echoed.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::Engine as _;

use crate::error::ApiError;
use crate::state::AppState;

/// The subprotocol of `/ws`, the one the server selects when a client offers subprotocols.
pub const WS_PROTOCOL: &str = "runbox.v1";

/// Prefix of the subprotocol that carries an API key (base64url, no padding) on a WebSocket handshake.
pub const WS_KEY_PREFIX: &str = "runbox.key.";

/// The owner of everything made without a key (keyless mode); no key may be named so.
pub const ANONYMOUS_OWNER: &str = "anonymous";

/// The authenticated caller. Async jobs (and sessions) belong to `owner` and are invisible to other owners.
#[derive(Debug, Clone)]
pub struct Caller {
    pub owner: String,
    /// Index of the caller's key in the server's key list.
    pub key: Option<usize>,
}

/// The subprotocols a WebSocket handshake offers, in order.
pub fn offered_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// How many presented secrets one request may have compared: enough for a client that sends its key two ways,
/// too few for one request to try a list of guesses while counting as a single rejection.
pub const MAX_PRESENTED_KEYS: usize = 3;

/// Every secret a request presents, in order: `Authorization: Bearer`, `X-API-Key`, a `runbox.key.` subprotocol;
/// at most [`MAX_PRESENTED_KEYS`] of them.
pub fn presented_keys(headers: &HeaderMap) -> Vec<String> {
    let mut keys = Vec::new();
    for v in headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        let v = v.trim();
        let (scheme, token) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
            keys.push(token.trim().to_string());
        }
    }
    keys.extend(
        headers
            .get_all("x-api-key")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.trim().to_string()),
    );
    keys.extend(
        offered_protocols(headers)
            .filter_map(|p| p.strip_prefix(WS_KEY_PREFIX))
            .filter_map(|encoded| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).ok())
            .filter_map(|bytes| String::from_utf8(bytes).ok()),
    );
    keys.truncate(MAX_PRESENTED_KEYS);
    keys
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        // Every presented secret is compared (in constant time) against every key; the first that matches wins.
        state.admission.authenticate(&presented_keys(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn one_request_has_at_most_three_secrets_compared() {
        let many: Vec<(&'static str, String)> = (0..10).map(|i| ("x-api-key", format!("guess-{i}"))).collect();
        let pairs: Vec<(&'static str, &str)> = many.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(presented_keys(&headers(&pairs)), ["guess-0", "guess-1", "guess-2"]);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer k1", "bearer k1", "BEARER k1", "BeArEr   k1 "] {
            assert_eq!(presented_keys(&headers(&[("authorization", v)])), ["k1"], "{v}");
        }
        assert!(presented_keys(&headers(&[("authorization", "Basic k1")])).is_empty());
        assert!(presented_keys(&headers(&[("authorization", "Bearer")])).is_empty());
    }

    #[test]
    fn every_presented_key_is_a_candidate() {
        let h = headers(&[("authorization", "Bearer wrong"), ("x-api-key", "right")]);
        assert_eq!(presented_keys(&h), ["wrong", "right"]);
    }

    #[test]
    fn a_websocket_key_travels_as_a_base64url_subprotocol() {
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("k/+= ey");
        let h = headers(&[(
            "sec-websocket-protocol",
            &format!("{WS_PROTOCOL}, {WS_KEY_PREFIX}{encoded}"),
        )]);
        assert_eq!(presented_keys(&h), ["k/+= ey"]);
        assert_eq!(offered_protocols(&h).next(), Some(WS_PROTOCOL));
        // Not base64url: ignored, not an error.
        let h = headers(&[("sec-websocket-protocol", "runbox.key.!!")]);
        assert!(presented_keys(&h).is_empty());
    }
}
