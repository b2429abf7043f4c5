//! Server configuration: one TOML file, every field overridable by a `RUNBOX_*` environment variable (nested
//! fields join with `_`: `RUNBOX_LIMITS_TIMEOUT_MS`) and by `--set key=value` flags. Values of overrides are parsed
//! as TOML (`8`, `true`, `["a","b"]`) and fall back to plain strings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// Origins allowed by CORS; empty disables CORS.
    pub cors_origins: Vec<String>,
    /// How long async execution records are kept.
    pub retention_hours: u64,
    /// How long in-flight runs may finish after SIGTERM before they are cancelled.
    pub shutdown_grace_ms: u64,
    /// Allow `callback_url` to target loopback and private addresses (off: they are refused).
    pub callback_allow_private: bool,
    pub callback_retries: u32,
    /// `human` or `json`.
    pub log_format: String,
    /// Protections the operator accepts running without (`no-cgroups`, `no-seccomp`, `no-landlock`).
    pub allow_degraded: Vec<String>,
    /// `auto`, `v1` or `v2`.
    pub cgroup: String,
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
}

pub fn default_data_dir() -> PathBuf {
    if nix_is_root() {
        return PathBuf::from("/var/lib/runbox");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("runbox")
}

fn nix_is_root() -> bool {
    runbox_sandbox::probe::is_root()
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
            retention_hours: 24,
            shutdown_grace_ms: 10_000,
            callback_allow_private: false,
            callback_retries: 3,
            log_format: "human".into(),
            allow_degraded: Vec::new(),
            cgroup: "auto".into(),
            limits: LimitCaps::default(),
            sessions: SessionLimits::default(),
            compile_cache_mb: 512,
            pools: Default::default(),
            aggregate: Default::default(),
        }
    }
}

/// Parses an override value as TOML, or keeps it as a string.
fn override_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Sets `path` (dot-separated) in `table`, refusing keys the configuration does not have.
fn set_path(table: &mut toml::Table, known: &toml::Table, path: &str, value: toml::Value) -> Result<(), ConfigError> {
    let (head, rest) = path.split_once('.').map_or((path, None), |(h, r)| (h, Some(r)));
    if !known.contains_key(head) && !matches!(head, "languages_dir" | "api_key") {
        return Err(ConfigError::Invalid(format!("unknown setting {path:?}")));
    }
    match rest {
        None => {
            table.insert(head.to_string(), value);
            Ok(())
        }
        Some(rest) => {
            let sub_known = known.get(head).and_then(|v| v.as_table()).cloned().unwrap_or_default();
            let sub = table
                .entry(head.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let sub = sub
                .as_table_mut()
                .ok_or_else(|| ConfigError::Invalid(format!("{head} is not a table")))?;
            set_path(sub, &sub_known, rest, value)
        }
    }
}

/// Environment variable names for every setting: `RUNBOX_` + the dotted path upper-cased with `_`.
fn env_overrides(known: &toml::Table, prefix: &str, out: &mut Vec<(String, String)>) {
    for (k, v) in known {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => env_overrides(t, &path, out),
            _ => out.push((format!("RUNBOX_{}", path.replace('.', "_").to_ascii_uppercase()), path)),
        }
    }
}

impl ServerConfig {
    /// File (optional), then environment, then `--set` pairs; later wins.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        sets: &[(String, String)],
    ) -> Result<ServerConfig, ConfigError> {
        let known = toml::Table::try_from(ServerConfig::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.into(),
                    message: e.to_string(),
                })?;
                toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::File {
                    path: path.into(),
                    message: e.to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        let mut names = Vec::new();
        env_overrides(&known, "", &mut names);
        names.push(("RUNBOX_LANGUAGES_DIR".into(), "languages_dir".into()));
        names.push(("RUNBOX_API_KEY".into(), "api_key".into()));
        for (var, path) in names {
            if let Some(raw) = env(&var).filter(|v| !v.is_empty()) {
                let value = match path.as_str() {
                    // Strings that could look like TOML stay strings.
                    "api_key" | "languages_dir" | "data_dir" | "listen" => toml::Value::String(raw),
                    _ => override_value(&raw),
                };
                set_path(&mut table, &known, &path, value)?;
            }
        }
        for (key, raw) in sets {
            set_path(&mut table, &known, key, override_value(raw))?;
        }
        let config: ServerConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::Invalid("max_concurrent must be at least 1".into()));
        }
        if !matches!(self.log_format.as_str(), "human" | "json") {
            return Err(ConfigError::Invalid("log_format must be human or json".into()));
        }
        if self.async_bytes_per_key < self.async_result_bytes {
            return Err(ConfigError::Invalid(
                "async_bytes_per_key must be at least async_result_bytes".into(),
            ));
        }
        self.aggregate.validate().map_err(ConfigError::Invalid)?;
        let mut names = std::collections::HashSet::new();
        for k in &self.api_keys {
            if k.key.len() < 16 {
                return Err(ConfigError::Invalid(format!(
                    "api key {:?} is shorter than 16 characters",
                    k.name
                )));
            }
            if !names.insert(&k.name) {
                return Err(ConfigError::Invalid(format!("api key name {:?} is used twice", k.name)));
            }
        }
        if self.keys().is_empty() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "no API key is configured, so the server only listens on loopback; {} is not a loopback address \
                 (set RUNBOX_API_KEY or api_keys to listen elsewhere)",
                self.listen
            )));
        }
        Ok(())
    }

    /// Every configured key, the single `api_key` included (named `default`).
    pub fn keys(&self) -> Vec<ApiKeyConfig> {
        let mut keys = self.api_keys.clone();
        if let Some(k) = &self.api_key {
            keys.push(ApiKeyConfig {
                name: "default".into(),
                key: k.clone(),
                rate_limit_per_minute: None,
                max_concurrent: None,
            });
        }
        keys
    }

    /// The effective configuration as TOML with every secret masked.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        let mask = |k: &str| format!("{}…({} chars)", &k[..k.len().min(3)], k.len());
        masked.api_key = masked.api_key.as_deref().map(mask);
        for k in &mut masked.api_keys {
            k.key = mask(&k.key);
        }
        toml::to_string_pretty(&masked).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_listen_on_loopback_8080() {
        let c = ServerConfig::load(None, &no_env, &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn env_and_sets_override_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runbox.toml");
        std::fs::write(&file, "max_concurrent = 3\n[limits]\ntimeout_ms = 5000\n").unwrap();
        let env = |k: &str| match k {
            "RUNBOX_MAX_CONCURRENT" => Some("5".to_string()),
            "RUNBOX_LIMITS_MEMORY_MB" => Some("100".to_string()),
            _ => None,
        };
        let c = ServerConfig::load(Some(&file), &env, &[("max_queue".into(), "7".into())]).unwrap();
        assert_eq!(
            (c.max_concurrent, c.max_queue, c.limits.timeout_ms, c.limits.memory_mb),
            (5, 7, 5000, 100)
        );
    }

    #[test]
    fn unknown_settings_and_bad_values_are_errors() {
        assert!(ServerConfig::load(None, &no_env, &[("nope".into(), "1".into())]).is_err());
        assert!(ServerConfig::load(None, &no_env, &[("max_concurrent".into(), "many".into())]).is_err());
    }

    #[test]
    fn non_loopback_without_keys_is_refused() {
        let err = ServerConfig::load(None, &no_env, &[("listen".into(), "\"0.0.0.0:8080\"".into())]).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let env = |k: &str| (k == "RUNBOX_API_KEY").then(|| "0123456789abcdef".to_string());
        ServerConfig::load(None, &env, &[("listen".into(), "\"0.0.0.0:8080\"".into())]).unwrap();
    }

    #[test]
    fn secrets_are_masked() {
        let env = |k: &str| (k == "RUNBOX_API_KEY").then(|| "supersecretkey-123456".to_string());
        let c = ServerConfig::load(None, &env, &[]).unwrap();
        let text = c.to_masked_toml();
        assert!(!text.contains("supersecretkey"), "{text}");
    }
}
