//! `GET /sessions` in a cluster: the caller's sessions on every node, not only on the node the front door picked.
//! The node that answers lists its own, asks each peer of `cluster.peers` for the caller's sessions there (with
//! the caller's own credentials, marked as forwarded so that the peer answers for itself only), and returns them
//! all. A peer that does not answer within a bounded time is left out: its sessions are lost or unreachable, which
//! their own routes say (`410 session_lost`). Peers known only through `cluster.peer_url` cannot be enumerated, so
//! list every node in `cluster.peers` for a complete listing.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use super::forward::FORWARDED_BY;
use crate::state::AppState;

/// How long a peer may take to list its sessions.
const PEER_LIST_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether this request is a listing to gather from every node.
pub fn is_cluster_listing(state: &AppState, req: &Request) -> bool {
    state.cluster.enabled()
        && req.method() == Method::GET
        && req.uri().path() == "/sessions"
        && !req.headers().contains_key(FORWARDED_BY)
}

/// The local listing plus every peer's.
pub async fn gather(state: &AppState, req: Request, next: Next) -> Response {
    let credentials = credentials(req.headers());
    let local = next.run(req).await;
    if local.status() != StatusCode::OK {
        return local;
    }
    let (parts, body) = local.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let mut all: Vec<Value> = serde_json::from_slice(&bytes).unwrap_or_default();
    let cluster = &state.cluster;
    let asks = cluster
        .peers()
        .filter(|(node, _)| *node != cluster.node)
        .map(|(node, base)| {
            let mut request = cluster
                .client()
                .get(format!("{base}/sessions"))
                .headers(credentials.clone())
                .timeout(PEER_LIST_TIMEOUT);
            if let Ok(v) = HeaderValue::from_str(&cluster.node) {
                request = request.header(FORWARDED_BY, v);
            }
            let node = node.to_string();
            async move {
                match request.send().await {
                    Ok(answer) if answer.status().is_success() => answer.json::<Vec<Value>>().await.unwrap_or_default(),
                    Ok(answer) => {
                        tracing::warn!(
                            node,
                            status = answer.status().as_u16(),
                            "a peer did not list its sessions"
                        );
                        Vec::new()
                    }
                    Err(e) => {
                        tracing::warn!(node, error = %e, "a peer did not list its sessions");
                        Vec::new()
                    }
                }
            }
        });
    for sessions in futures_util::future::join_all(asks).await {
        all.extend(sessions);
    }
    let body = serde_json::to_vec(&all).unwrap_or_default();
    let mut response = Response::from_parts(parts, Body::from(body));
    response.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
    response
}

/// The caller's credentials, as sent.
fn credentials(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in ["authorization", "x-api-key"] {
        for v in headers.get_all(name) {
            out.append(name, v.clone());
        }
    }
    out
}
