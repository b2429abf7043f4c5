//! What the server is and can do: `/`, `/health` (liveness), `/health/ready` (readiness), `/languages`,
//! `/metrics`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use runbox_engine::CatalogueEntry;

use crate::auth::Caller;
use crate::readiness::{self, Verdict};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct ApiInfo {
    pub name: String,
    pub version: String,
    pub docs: String,
    pub openapi: String,
    pub redoc: String,
}

/// API information and where its documentation lives.
#[utoipa::path(get, path = "/", operation_id = "apiInfo", tag = "info",
    responses((status = 200, body = ApiInfo), (status = 401, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody)))]
pub async fn root(_caller: Caller) -> Json<ApiInfo> {
    Json(ApiInfo {
        name: "runbox".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        docs: "/docs".into(),
        openapi: "/openapi.json".into(),
        redoc: "/redoc".into(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct LanguageCounts {
    pub available: usize,
    pub total: usize,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `draining` (shutting down) or `degraded` (sandboxes cannot run: see `reason`).
    pub status: String,
    /// Why the server is degraded (also given by `GET /health/ready`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub version: String,
    pub uptime_s: u64,
    /// Protections every sandbox has in force, or why sandboxes cannot run.
    #[schema(value_type = Object)]
    pub sandbox: serde_json::Value,
    /// Known only after the first language discovery, which starts with the server.
    pub languages: Option<LanguageCounts>,
    pub active_runs: i64,
    pub queued: i64,
    /// Warm pools: ready sandboxes per language, their targets, hits and misses.
    pub pools: Vec<runbox_engine::pools::PoolStats>,
    pub sessions: usize,
}

/// Liveness (always 200 while the process serves): version, uptime, sandbox protections in force, languages
/// available, pools, and `status` `degraded` with its `reason` when sandboxes cannot be built. Needs no key.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "info", security(()),
    responses((status = 200, body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let sandbox = match &state.protections {
        Ok(f) => serde_json::to_value(f).unwrap_or_default(),
        Err(problem) => serde_json::json!({ "error": problem }),
    };
    let languages = state
        .languages
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|l| LanguageCounts {
            available: l.iter().filter(|e| e.available).count(),
            total: l.len(),
        });
    let (status, reason) = match readiness::verdict(&state) {
        Verdict::Ready | Verdict::Unchecked => ("ok", None),
        Verdict::Draining => ("draining", None),
        Verdict::Degraded(why) => ("degraded", Some(why)),
    };
    Json(Health {
        status: status.into(),
        reason,
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: state.started.elapsed().as_secs(),
        sandbox,
        languages,
        active_runs: state.metrics.active_runs.load(Ordering::Relaxed),
        queued: state.metrics.queued.load(Ordering::Relaxed),
        pools: state.engine.pool_stats(),
        sessions: state.sessions.count(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (sandboxes cannot be built: see `reason`) or `draining` (shutting down).
    pub status: String,
    /// Why the server is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the latest trial sandbox (run at start-up, then every 30 s) ran; absent before the first one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial_ok: Option<bool>,
    /// Seconds since the latest trial sandbox ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial_age_s: Option<u64>,
}

/// Readiness: 200 when this server can run code (a trial sandbox ran, and not every warm pool is failing), 503
/// when sandboxes cannot be built, with the reason, or while shutting down. Needs no key. For load balancers
/// and orchestrators; `/health` stays 200 as long as the process serves.
#[utoipa::path(get, path = "/health/ready", operation_id = "ready", tag = "info", security(()),
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Readiness>) {
    let trial = state.host.latest_trial();
    let (code, status, reason) = match readiness::verdict(&state) {
        Verdict::Ready => (StatusCode::OK, "ready", None),
        Verdict::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining", None),
        Verdict::Unchecked => (
            StatusCode::SERVICE_UNAVAILABLE,
            "degraded",
            Some("no trial sandbox has run yet".to_string()),
        ),
        Verdict::Degraded(why) => (StatusCode::SERVICE_UNAVAILABLE, "degraded", Some(why)),
    };
    (
        code,
        Json(Readiness {
            status: status.into(),
            reason,
            trial_ok: trial.as_ref().map(|(r, _)| r.is_ok()),
            trial_age_s: trial.as_ref().map(|(_, age)| age.as_secs()),
        }),
    )
}

/// The language catalogue: id, name, aliases, version, availability, compiled, session support.
#[utoipa::path(get, path = "/languages", operation_id = "listLanguages", tag = "info",
    responses((status = 200, body = Vec<CatalogueEntry>), (status = 401, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody)))]
pub async fn languages(State(state): State<Arc<AppState>>, _caller: Caller) -> Json<Vec<CatalogueEntry>> {
    Json(state.languages().await)
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "info",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn metrics(State(state): State<Arc<AppState>>, _caller: Caller) -> impl IntoResponse {
    let jobs_queued = state.jobs.count("queued").await;
    let jobs_running = state.jobs.count("running").await;
    let pools = state.engine.pool_stats();
    let mut text = state.metrics.render(&[
        (
            "runbox_async_jobs_queued",
            "Async executions waiting to run.",
            jobs_queued,
        ),
        ("runbox_async_jobs_running", "Async executions running.", jobs_running),
        (
            "runbox_sessions",
            "Open stateful sessions.",
            state.sessions.count() as i64,
        ),
        (
            "runbox_warm_sessions",
            "Sessions started ahead of time, waiting for an owner.",
            state.sessions.warm_count() as i64,
        ),
    ]);
    /// (metric name, type, help, value of one pool)
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&runbox_engine::pools::PoolStats) -> u64,
    );
    let families: [Family; 5] = [
        (
            "runbox_pool_ready",
            "gauge",
            "Warm sandboxes ready, by language.",
            |p| p.ready as u64,
        ),
        (
            "runbox_pool_target",
            "gauge",
            "Warm sandboxes wanted, by language.",
            |p| p.target as u64,
        ),
        (
            "runbox_pool_hits_total",
            "counter",
            "Requests served by a warm sandbox.",
            |p| p.hits,
        ),
        (
            "runbox_pool_misses_total",
            "counter",
            "Pooled-language requests that found no warm sandbox.",
            |p| p.misses,
        ),
        (
            "runbox_pool_zygote_running",
            "gauge",
            "1 when the language's warm sandboxes are forked by its zygote, 0 when built from scratch.",
            |p| u64::from(p.zygote.as_deref() == Some("running")),
        ),
    ];
    for (name, kind, help, value) in families {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for p in &pools {
            text.push_str(&format!("{name}{{language=\"{}\"}} {}\n", p.language, value(p)));
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}
