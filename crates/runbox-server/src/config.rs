//! Server configuration: one TOML file, every field overridable by a `RUNBOX_*` environment variable (nested
//! fields join with `_`: `RUNBOX_LIMITS_TIMEOUT_MS`) and by `--set key=value` flags. Values of overrides are parsed
//! as TOML (`8`, `true`, `["a","b"]`) and fall back to plain strings.
//!
//! This file holds the settings and their defaults, and shows them with secrets masked; `config/overrides.rs`
//! layers the file, the environment and `--set` flags into one, and `config/validate.rs` refuses a configuration
//! the server must not start with.

mod overrides;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;

use runbox_engine::sessions::SessionLimits;
use runbox_engine::LimitCaps;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// One API key and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A name for logs and metrics; the key itself is never logged.
    pub name: String,
    pub key: String,
    /// Requests per minute; none means unlimited.
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
    /// Runs at once; none means only the server-wide limit applies.
    #[serde(default)]
    pub max_concurrent: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub languages_dir: Option<PathBuf>,
    /// A single key (also settable as `RUNBOX_API_KEY`), in addition to `api_keys`.
    pub api_key: Option<String>,
    pub api_keys: Vec<ApiKeyConfig>,
    /// Sandboxes running at once, server-wide.
    pub max_concurrent: usize,
    /// Requests waiting for a sandbox before new ones get 503.
    pub max_queue: usize,
    /// Async executions waiting in the database before new submissions get 503.
    pub max_async_queued: usize,
    /// Largest result one async execution stores; longer outputs are cut and the record says `result_truncated`.
    pub async_result_bytes: u64,
    /// Async execution records (any status) one key may hold; more submissions get 429 `async_quota_exceeded`.
    pub async_jobs_per_key: u64,
    /// Bytes of async execution records (requests, results; a job not yet finished counts `async_result_bytes`)
    /// one key may hold.
    pub async_bytes_per_key: u64,
    pub body_limit_bytes: usize,
    /// Web origins (`https://app.example`) whose pages may call the API: CORS for HTTP, and the `Origin` check of
    /// `/ws`. `["*"]` allows every origin (without credentials); empty disables CORS (`/ws` then still accepts
    /// its own origin and pages on loopback). A variable takes a comma-separated list.
    pub cors_origins: Vec<String>,
    /// Without API keys, `Host` values served besides loopback ones (`name` for any port, `name:port` for one):
    /// other names get 421, so that a page re-pointed at loopback by DNS rebinding cannot use the server.
    pub allowed_hosts: Vec<String>,
    /// How long async execution records are kept.
    pub retention_hours: u64,
    /// How long in-flight runs may finish after SIGTERM before they are cancelled.
    pub shutdown_grace_ms: u64,
    /// Allow `callback_url` to target loopback and private addresses (off: they are refused).
    pub callback_allow_private: bool,
    pub callback_retries: u32,
    /// `human` or `json`.
    pub log_format: String,
    /// Protections the operator accepts running without (`no-cgroups`, `no-cpu-cap`, `no-seccomp`,
    /// `no-landlock`).
    pub allow_degraded: Vec<runbox_sandbox::Degradation>,
    /// `auto`, `v1` or `v2`.
    pub cgroup: runbox_sandbox::CgroupPreference,
    /// Maxima on client-chosen limits.
    pub limits: LimitCaps,
    /// Session lifecycle: idle timeout, lifetime, counts per key and in total.
    pub sessions: SessionLimits,
    /// Size of the compile cache in MiB (0 disables it).
    pub compile_cache_mb: u64,
    /// Warm pools of pre-started sandboxes per language.
    pub pools: runbox_engine::pools::PoolConfig,
    /// Caps on all of runbox (its parent cgroup) and on each key's sandboxes together; defaults sized from the
    /// machine.
    pub aggregate: runbox_engine::ledger::AggregateLimits,
    /// Where async executions live: none keeps them in SQLite in the data directory (one node);
    /// `postgres://user:password@host:port/db` keeps them in PostgreSQL, shared by every node that names it
    /// (`RUNBOX_DATABASE_URL`). See docs/scaling.md.
    pub database_url: Option<String>,
    /// With `database_url`: how long a node's claim on a running job lasts without renewal (it renews a third of
    /// the way through). A node that stops for longer loses its jobs to the other nodes.
    pub async_lease_ms: u64,
    /// With `database_url`: how many times a job may be started in all before a job whose node keeps stopping ends
    /// with the error `node_lost`.
    pub async_max_attempts: u32,
    /// This node's id in a cluster (`RUNBOX_NODE_ID`); empty: the host name (see [`crate::cluster::config::node_id`]).
    pub node_id: String,
    /// Peers of this node (`[cluster]`); none: a single node, as always.
    pub cluster: crate::cluster::config::ClusterConfig,
}

/// The shortest API key accepted: a short key is guessed quickly, and keyed servers listen beyond loopback.
pub const MIN_KEY_CHARS: usize = 16;

/// The name of the key given as `api_key` / `RUNBOX_API_KEY`.
pub const DEFAULT_KEY_NAME: &str = "default";

/// The engine's default data directory (see `runbox_engine::data_dir::default_dir`).
pub fn default_data_dir() -> PathBuf {
    runbox_engine::data_dir::default_dir()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            data_dir: default_data_dir(),
            languages_dir: None,
            api_key: None,
            api_keys: Vec::new(),
            max_concurrent: std::thread::available_parallelism().map(|n| n.get() * 4).unwrap_or(8),
            max_queue: 256,
            max_async_queued: 10_000,
            async_result_bytes: 2 << 20,
            async_jobs_per_key: 1000,
            async_bytes_per_key: 256 << 20,
            body_limit_bytes: 16 << 20,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            retention_hours: 24,
            shutdown_grace_ms: 10_000,
            callback_allow_private: false,
            callback_retries: 3,
            log_format: "human".into(),
            allow_degraded: Vec::new(),
            cgroup: runbox_sandbox::CgroupPreference::Auto,
            limits: LimitCaps::default(),
            sessions: SessionLimits::default(),
            compile_cache_mb: 512,
            pools: Default::default(),
            aggregate: Default::default(),
            database_url: None,
            async_lease_ms: 30_000,
            async_max_attempts: 3,
            node_id: String::new(),
            cluster: Default::default(),
        }
    }
}

impl ServerConfig {
    /// Every configured key, the single `api_key` included (named `default`).
    pub fn keys(&self) -> Vec<ApiKeyConfig> {
        let mut keys = self.api_keys.clone();
        if let Some(k) = &self.api_key {
            keys.push(ApiKeyConfig {
                name: DEFAULT_KEY_NAME.into(),
                key: k.clone(),
                rate_limit_per_minute: None,
                max_concurrent: None,
            });
        }
        keys
    }

    /// The effective configuration as TOML with every secret masked: no character of a key is shown, only its
    /// length (a prefix of a short key would be most of it).
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        let mask = |k: &str| format!("***({} chars)", k.chars().count());
        masked.api_key = masked.api_key.as_deref().map(mask);
        for k in &mut masked.api_keys {
            k.key = mask(&k.key);
        }
        masked.database_url = masked.database_url.as_deref().map(mask_password);
        toml::to_string_pretty(&masked).unwrap_or_default()
    }
}

/// A database URL with its password (if any) masked.
fn mask_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "***(not a URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let env = |k: &str| (k == "RUNBOX_API_KEY").then(|| "supersecretkey-123456".to_string());
        let c = ServerConfig::load(None, &env, &[]).unwrap();
        let text = c.to_masked_toml();
        assert!(!text.contains("supersecretkey"), "{text}");
    }

    #[test]
    fn masking_shows_no_character_of_any_key() {
        let c = ServerConfig {
            api_key: Some("abcdefghijklmnopq".into()),
            api_keys: vec![ApiKeyConfig {
                name: "x".into(),
                key: "zyxwvutsrqponmlkj".into(),
                rate_limit_per_minute: None,
                max_concurrent: None,
            }],
            ..Default::default()
        };
        let text = c.to_masked_toml();
        assert!(!text.contains("abc") && !text.contains("zyx"), "{text}");
        assert!(text.contains("***(17 chars)"), "{text}");
    }
}
