//! Forwarding a request for another node's session (or execution) to that node, as a middleware in front of the
//! routes: the handlers never see a foreign id.
//!
//! The request goes to the owner as the caller sent it, streamed both ways (upload bodies in, SSE and download
//! bodies out, nothing buffered), with the caller's own credentials (`Authorization`, `X-API-Key`). The owner
//! authenticates the caller again and checks that the session is the caller's: a session is only ever reached
//! with its owner key. The alternative — a node-to-node secret plus the key's name — was rejected: that secret
//! would let whoever holds it (any node, or anything that reads a node's environment) act as every key at once,
//! whereas a forwarded request can never do more than its caller could. The entry node checks the key too
//! (without charging its rate limit: the owner charges it, once), so an unauthenticated request is not sent on.
//!
//! `GET /sessions` gathers the caller's sessions from every node of `cluster.peers` (see [`super::list`]).
//!
//! A request already forwarded once ([`FORWARDED_BY`]) is never forwarded again: nodes that disagree about
//! where an id lives cannot bounce a request between them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use super::Owner;
use crate::error::ApiError;
use crate::state::AppState;

/// Set on a forwarded request: the id of the node that forwarded it.
pub const FORWARDED_BY: &str = "x-runbox-forwarded-by";

/// Set on a `410 session_lost`: the reason, so that a forwarding node learns that its peer is draining.
pub const LOST_REASON: &str = "x-runbox-session-lost";

/// What kind of state a path addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Session,
    Execution,
}

/// The id a path addresses: `/sessions/{id}[/...]` or `/executions/{id}`.
pub fn routed_id(path: &str) -> Option<(Kind, &str)> {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let kind = match parts.next()? {
        "sessions" => Kind::Session,
        "executions" => Kind::Execution,
        _ => return None,
    };
    let id = parts.next().filter(|id| !id.is_empty())?;
    Some((kind, id))
}

/// `410 session_lost`: the session's node is gone (or going), with it the session's state.
pub fn session_lost(node: &str, reason: &'static str) -> Response {
    let message = match reason {
        "node_draining" => format!("node {node} was shut down and ended its sessions; start a new session"),
        "node_restarted" => format!("node {node} restarted since this session began; start a new session"),
        _ => format!("node {node}, which held this session, cannot be reached; start a new session"),
    };
    let mut response = ApiError::new(StatusCode::GONE, "session_lost", message)
        .with_details(serde_json::json!({"node": node, "reason": reason}))
        .into_response();
    response
        .headers_mut()
        .insert(LOST_REASON, HeaderValue::from_static(reason));
    response
}

/// The middleware: requests for state on another node go there; the rest go on to the routes.
pub async fn route(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if super::list::is_cluster_listing(&state, &req) {
        return super::list::gather(&state, req, next).await;
    }
    let Some((kind, id)) = routed_id(req.uri().path()) else {
        return next.run(req).await;
    };
    let cluster = &state.cluster;
    if kind == Kind::Execution && !cluster.jobs_node_local.load(std::sync::atomic::Ordering::Relaxed) {
        return next.run(req).await;
    }
    match cluster.owner_of(id) {
        Owner::Local => {
            if kind == Kind::Session && cluster.sessions_have_ended() {
                return session_lost(&cluster.node, "node_draining");
            }
            if kind == Kind::Session {
                if let Some(reason) = cluster.earlier_life(id) {
                    return session_lost(&cluster.node, reason);
                }
            }
            next.run(req).await
        }
        Owner::Unknown { .. } => not_found(kind),
        Owner::Peer { node, base } => {
            if req.headers().contains_key(FORWARDED_BY) {
                return not_found(kind);
            }
            if state.admission.auth_required() && !authenticated(&state, req.headers()) {
                state.metrics.record_rejection("unauthorized");
                return ApiError::unauthorized().into_response();
            }
            proxy(&state, &node, &base, kind, req).await
        }
    }
}

fn not_found(kind: Kind) -> Response {
    ApiError::not_found(match kind {
        Kind::Session => "session",
        Kind::Execution => "execution",
    })
    .into_response()
}

fn authenticated(state: &AppState, headers: &HeaderMap) -> bool {
    crate::auth::presented_keys(headers)
        .iter()
        .any(|k| state.admission.key_index(k).is_some())
}

/// Headers that belong to one hop, not to the request (RFC 9110 §7.6.1), plus `Host` (the owner's is its own).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

async fn proxy(state: &AppState, node: &str, base: &str, kind: Kind, req: Request) -> Response {
    let cluster = &state.cluster;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = HeaderMap::new();
    for (name, value) in parts.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        headers.append(name.clone(), value.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&cluster.node) {
        headers.insert(FORWARDED_BY, v);
    }
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let sent = cluster
        .client()
        .request(parts.method.clone(), format!("{base}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(node, error = %e, "a forwarded request did not reach its node");
            return match kind {
                Kind::Session => session_lost(node, cluster.lost_reason(node)),
                Kind::Execution => ApiError::unavailable(
                    "node_unreachable",
                    format!("node {node}, which holds this execution, cannot be reached"),
                )
                .into_response(),
            };
        }
    };
    if answer.status() == StatusCode::GONE
        && answer.headers().get(LOST_REASON).and_then(|v| v.to_str().ok()) == Some("node_draining")
    {
        cluster.note_draining(node);
    }
    let mut response = Response::builder().status(answer.status());
    if let Some(h) = response.headers_mut() {
        // CORS headers are this node's to set (its own CORS layer, configured as the owner's, wraps the answer).
        let cors = |n: &HeaderName| n.as_str().starts_with("access-control-");
        for (name, value) in answer.headers().iter().filter(|(n, _)| !hop_by_hop(n) && !cors(n)) {
            h.append(name.clone(), value.clone());
        }
        // A streamed answer must not be held by a buffering front door either.
        if h.get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
        {
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        }
    }
    let stream = answer.bytes_stream().map_err(std::io::Error::other);
    response
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| ApiError::internal(e).into_response())
}

/// Adds the answers of a cluster to the OpenAPI document: `410 session_lost` on every route of one session, and
/// `503 node_unreachable` on the routes of one execution (a node-local job store whose node is gone).
pub fn document(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for (route, item) in doc.paths.paths.iter_mut() {
        let (status, answer) = match routed_id(&route.replace("{id}", "x")) {
            Some((Kind::Session, _)) => (
                "410",
                error(
                    "session_lost: the node that held the session is gone (`details.node`, `details.reason`: \
                     node_unreachable, node_draining or node_restarted); start a new session",
                ),
            ),
            Some((Kind::Execution, _)) => (
                "503",
                error("the server is overloaded or draining, or the node holding this execution cannot be reached"),
            ),
            None => continue,
        };
        let ops = [&mut item.get, &mut item.put, &mut item.delete, &mut item.post];
        for op in ops.into_iter().flatten() {
            op.responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| answer.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_with_an_id_are_routed() {
        assert_eq!(routed_id("/sessions/s_1/files/a/b"), Some((Kind::Session, "s_1")));
        assert_eq!(routed_id("/sessions/s_1"), Some((Kind::Session, "s_1")));
        assert_eq!(routed_id("/executions/e_1"), Some((Kind::Execution, "e_1")));
        assert_eq!(routed_id("/sessions"), None);
        assert_eq!(routed_id("/sessions/"), None);
        assert_eq!(routed_id("/execute"), None);
    }
}
