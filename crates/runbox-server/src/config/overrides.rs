//! Loading a configuration: the TOML file, then a `RUNBOX_*` variable for every setting, then `--set key=value`
//! flags, later winning; override values are read as TOML and fall back to plain strings, and unknown settings
//! are refused.

use std::path::Path;

use super::{ConfigError, ServerConfig};

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
