//! What a configuration must satisfy before the server starts with it (it is checked again when built in code):
//! sane bounds, distinct long key names, no keyless listening beyond loopback, a usable cluster and database.

use super::{ConfigError, ServerConfig, DEFAULT_KEY_NAME, MIN_KEY_CHARS};

impl ServerConfig {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
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
}
