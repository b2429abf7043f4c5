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

/// Parses an override value as TOML, or keeps it as a string.
fn override_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// A setting whose default is a list also takes a comma-separated string (`http://a,http://b`), so
/// `RUNBOX_CORS_ORIGINS=http://a,http://b` means what it says.
fn as_list_if_needed(known: &toml::Table, path: &str, value: toml::Value) -> toml::Value {
    let mut node = Some(known);
    let mut default = None;
    for part in path.split('.') {
        default = node.and_then(|t| t.get(part));
        node = default.and_then(|v| v.as_table());
    }
    match (default, value) {
        (Some(toml::Value::Array(_)), toml::Value::String(s)) => toml::Value::Array(
            s.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_string()))
                .collect(),
        ),
        (_, value) => value,
    }
}

/// Sets `path` (dot-separated) in `table`, refusing keys the configuration does not have.
fn set_path(table: &mut toml::Table, known: &toml::Table, path: &str, value: toml::Value) -> Result<(), ConfigError> {
    let (head, rest) = path.split_once('.').map_or((path, None), |(h, r)| (h, Some(r)));
    // A table empty by default is a map (`cluster.peers`: node ids the defaults cannot know): any key goes.
    if !known.contains_key(head) && !matches!(head, "languages_dir" | "api_key" | "database_url") && !known.is_empty() {
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
        names.push(("RUNBOX_DATABASE_URL".into(), "database_url".into()));
        names.push(("RUNBOX_CLUSTER_PEERS".into(), "cluster.peers".into()));
        for (var, path) in names {
            if let Some(raw) = env(&var).filter(|v| !v.is_empty()) {
                let value = match path.as_str() {
                    // Strings that could look like TOML stay strings.
                    "api_key" | "languages_dir" | "data_dir" | "listen" | "database_url" | "node_id" => {
                        toml::Value::String(raw)
                    }
                    "cluster.peers" => {
                        toml::Value::Table(crate::cluster::config::parse_peers(&raw).map_err(ConfigError::Invalid)?)
                    }
                    _ => as_list_if_needed(&known, &path, override_value(&raw)),
                };
                set_path(&mut table, &known, &path, value)?;
            }
        }
        for (key, raw) in sets {
            set_path(
                &mut table,
                &known,
                key,
                as_list_if_needed(&known, key, override_value(raw)),
            )?;
        }
        // Errors name the setting (`allow_degraded[1]: unknown variant ...`).
        let config: ServerConfig = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Invalid(format!("{path}: {}", e.into_inner().message()))
        })?;
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
        crate::origins::validate(&self.cors_origins).map_err(ConfigError::Invalid)?;
        if self.async_bytes_per_key < self.async_result_bytes {
            return Err(ConfigError::Invalid(
                "async_bytes_per_key must be at least async_result_bytes".into(),
            ));
        }
        self.aggregate.validate().map_err(ConfigError::Invalid)?;
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::Invalid(
                    "database_url must be a postgres:// (or postgresql://) URL; leave it out to keep async \
                     executions in SQLite"
                        .into(),
                ));
            }
        }
        if self.async_lease_ms < 1000 {
            return Err(ConfigError::Invalid("async_lease_ms must be at least 1000".into()));
        }
        if self.async_max_attempts == 0 {
            return Err(ConfigError::Invalid("async_max_attempts must be at least 1".into()));
        }
        self.cluster
            .validate(&crate::cluster::config::node_id(&self.node_id))
            .map_err(ConfigError::Invalid)?;
        if self.limits.cpu_millicores < runbox_sandbox::DEFAULT_CPU_MILLICORES {
            return Err(ConfigError::Invalid(format!(
                "limits.cpu_millicores must be at least {} (a run's default is one core)",
                runbox_sandbox::DEFAULT_CPU_MILLICORES
            )));
        }
        // Every key, `RUNBOX_API_KEY` (named `default`) included: a key's name is its owner identity (sessions and
        // async jobs belong to it), so two keys may never share one, and none may take the keyless owner's name.
        let mut names = std::collections::HashSet::new();
        for k in self.keys() {
            if k.name.trim().is_empty() {
                return Err(ConfigError::Invalid("an api key has an empty name".into()));
            }
            if k.name == crate::auth::ANONYMOUS_OWNER {
                return Err(ConfigError::Invalid(format!(
                    "api key name {:?} is reserved for the keyless mode",
                    k.name
                )));
            }
            if k.key.chars().count() < MIN_KEY_CHARS {
                return Err(ConfigError::Invalid(format!(
                    "api key {:?} is shorter than {MIN_KEY_CHARS} characters",
                    k.name
                )));
            }
            if !names.insert(k.name.clone()) {
                let hint = if k.name == DEFAULT_KEY_NAME && self.api_key.is_some() {
                    " (RUNBOX_API_KEY / api_key is named \"default\": rename the api_keys entry)"
                } else {
                    ""
                };
                return Err(ConfigError::Invalid(format!(
                    "api key name {:?} is used by two keys{hint}; each key needs a name of its own",
                    k.name
                )));
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
    fn a_cpu_bandwidth_maximum_below_one_core_is_refused() {
        let set = |v: &str| [("limits.cpu_millicores".to_string(), v.to_string())];
        let err = ServerConfig::load(None, &no_env, &set("500")).unwrap_err();
        assert!(err.to_string().contains("limits.cpu_millicores"), "{err}");
        let config = ServerConfig::load(None, &no_env, &set("8000")).unwrap();
        assert_eq!(config.limits.cpu_millicores, 8000);
    }

    #[test]
    fn non_loopback_without_keys_is_refused() {
        let err = ServerConfig::load(None, &no_env, &[("listen".into(), "\"0.0.0.0:8080\"".into())]).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let env = |k: &str| (k == "RUNBOX_API_KEY").then(|| "0123456789abcdef".to_string());
        ServerConfig::load(None, &env, &[("listen".into(), "\"0.0.0.0:8080\"".into())]).unwrap();
    }

    #[test]
    fn list_settings_take_comma_separated_strings() {
        let env = |k: &str| (k == "RUNBOX_CORS_ORIGINS").then(|| "http://a.example, http://b.example:8080".to_string());
        let c = ServerConfig::load(None, &env, &[]).unwrap();
        assert_eq!(c.cors_origins, ["http://a.example", "http://b.example:8080"]);
        let c = ServerConfig::load(None, &no_env, &[("cors_origins".into(), "http://c.example".into())]).unwrap();
        assert_eq!(c.cors_origins, ["http://c.example"]);
        // TOML lists keep working, `*` included.
        let c = ServerConfig::load(None, &no_env, &[("cors_origins".into(), r#"["*"]"#.into())]).unwrap();
        assert_eq!(c.cors_origins, ["*"]);
        let env = |k: &str| (k == "RUNBOX_CORS_ORIGINS").then(|| "*".to_string());
        assert_eq!(ServerConfig::load(None, &env, &[]).unwrap().cors_origins, ["*"]);
        let env = |k: &str| (k == "RUNBOX_ALLOW_DEGRADED").then(|| "no-cgroups,no-landlock".to_string());
        assert_eq!(
            ServerConfig::load(None, &env, &[]).unwrap().allow_degraded,
            [
                runbox_sandbox::Degradation::NoCgroups,
                runbox_sandbox::Degradation::NoLandlock
            ]
        );
    }

    #[test]
    fn an_unknown_degradation_or_cgroup_version_is_refused_naming_the_setting() {
        for (name, value, field) in [
            ("RUNBOX_ALLOW_DEGRADED", "no-cgroups,no-sandbox", "allow_degraded"),
            ("RUNBOX_CGROUP", "v3", "cgroup"),
        ] {
            let env = |k: &str| (k == name).then(|| value.to_string());
            let err = ServerConfig::load(None, &env, &[]).unwrap_err().to_string();
            assert!(err.contains(field), "{name}={value}: {err}");
        }
        let env = |k: &str| (k == "RUNBOX_CGROUP").then(|| "v1".to_string());
        let c = ServerConfig::load(None, &env, &[]).unwrap();
        assert_eq!(c.cgroup, runbox_sandbox::CgroupPreference::V1);
    }

    #[test]
    fn cors_origins_that_are_not_origins_are_refused() {
        for bad in [
            r#"["a.example"]"#,
            r#"["https://a.example/app"]"#,
            r#"["*", "https://a.example"]"#,
        ] {
            let err = ServerConfig::load(None, &no_env, &[("cors_origins".into(), bad.into())]).unwrap_err();
            assert!(err.to_string().contains("cors_origins"), "{bad}: {err}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        let env = |k: &str| (k == "RUNBOX_API_KEY").then(|| "supersecretkey-123456".to_string());
        let c = ServerConfig::load(None, &env, &[]).unwrap();
        let text = c.to_masked_toml();
        assert!(!text.contains("supersecretkey"), "{text}");
    }

    #[test]
    fn the_database_url_comes_from_its_variable_and_its_password_is_masked() {
        let env = |k: &str| (k == "RUNBOX_DATABASE_URL").then(|| "postgres://runbox:hunter2pw@db:5432/runbox".into());
        let c = ServerConfig::load(None, &env, &[]).unwrap();
        assert_eq!(
            c.database_url.as_deref(),
            Some("postgres://runbox:hunter2pw@db:5432/runbox")
        );
        let text = c.to_masked_toml();
        assert!(
            !text.contains("hunter2pw") && text.contains("postgres://runbox:***@db:5432/runbox"),
            "{text}"
        );
        let bad = [("database_url".to_string(), "mysql://x".to_string())];
        assert!(ServerConfig::load(None, &no_env, &bad).is_err());
        assert_eq!(ServerConfig::load(None, &no_env, &[]).unwrap().database_url, None);
    }

    #[test]
    fn a_config_key_named_like_runbox_api_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runbox.toml");
        std::fs::write(
            &file,
            "api_keys = [{name = \"default\", key = \"aaaaaaaaaaaaaaaaaaaa\"}]\n",
        )
        .unwrap();
        let env = |k: &str| (k == "RUNBOX_API_KEY").then(|| "bbbbbbbbbbbbbbbbbbbb".to_string());
        let err = ServerConfig::load(Some(&file), &env, &[]).unwrap_err().to_string();
        assert!(err.contains("\"default\"") && err.contains("two keys"), "{err}");
        assert!(
            !err.contains("aaaa") && !err.contains("bbbb"),
            "a key leaked into {err}"
        );
        // Two entries of the file with one name, and a key taking the keyless owner's name, are refused too.
        let twice = "api_keys = [{name = \"x\", key = \"aaaaaaaaaaaaaaaaaaaa\"}, {name = \"x\", key = \"cccccccccccccccccccc\"}]";
        std::fs::write(&file, twice).unwrap();
        assert!(ServerConfig::load(Some(&file), &no_env, &[]).is_err());
        std::fs::write(
            &file,
            "api_keys = [{name = \"anonymous\", key = \"aaaaaaaaaaaaaaaaaaaa\"}]",
        )
        .unwrap();
        assert!(ServerConfig::load(Some(&file), &no_env, &[]).is_err());
    }

    #[test]
    fn a_short_runbox_api_key_is_refused_by_name_without_printing_it() {
        let env = |k: &str| (k == "RUNBOX_API_KEY").then(|| "s3k".to_string());
        let err = ServerConfig::load(None, &env, &[("listen".into(), "\"0.0.0.0:8080\"".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"default\"") && err.contains("16"), "{err}");
        assert!(!err.contains("s3k"), "the key leaked into {err}");
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

    #[test]
    fn cluster_peers_come_from_the_file_the_variable_or_set() {
        let env = |k: &str| match k {
            "RUNBOX_NODE_ID" => Some("n1".to_string()),
            "RUNBOX_CLUSTER_PEERS" => Some("n1=http://127.0.0.2:8080,n2=http://127.0.0.3:8080".to_string()),
            _ => None,
        };
        let c = ServerConfig::load(None, &env, &[]).unwrap();
        assert_eq!(c.node_id, "n1");
        assert_eq!(c.cluster.peers.len(), 2);
        assert_eq!(c.cluster.peers["n2"], "http://127.0.0.3:8080");
        let set = [
            ("node_id".to_string(), "n3".to_string()),
            ("cluster.peers.n3".to_string(), "http://127.0.0.4:8080".to_string()),
            (
                "cluster.peer_url".to_string(),
                "http://{node}.runbox-nodes:8080".to_string(),
            ),
        ];
        let c = ServerConfig::load(None, &no_env, &set).unwrap();
        assert_eq!(c.cluster.peers["n3"], "http://127.0.0.4:8080");
        assert_eq!(c.cluster.peer_url, "http://{node}.runbox-nodes:8080");
        // A node id that cannot live in ids is refused once the node has peers; alone, it does not matter.
        let bad = |k: &str| match k {
            "RUNBOX_NODE_ID" => Some("Node.One".to_string()),
            "RUNBOX_CLUSTER_PEERS" => Some("n2=http://127.0.0.3:8080".to_string()),
            _ => None,
        };
        assert!(ServerConfig::load(None, &bad, &[])
            .unwrap_err()
            .to_string()
            .contains("node id"));
        let alone = |k: &str| (k == "RUNBOX_NODE_ID").then(|| "Node.One".to_string());
        ServerConfig::load(None, &alone, &[]).unwrap();
    }
}
