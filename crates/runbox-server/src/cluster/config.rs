//! The cluster's part of the configuration: this node's id and how to reach its peers. With neither `peers` nor
//! `peer_url` set, the node is alone and behaves exactly as a single runbox always did (ids without a node part).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[cluster]` in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Node id → base URL (`http://10.0.0.5:8080`). As a variable: `RUNBOX_CLUSTER_PEERS=n1=http://…,n2=http://…`.
    /// May list this node too (one table for every node).
    pub peers: BTreeMap<String, String>,
    /// A URL pattern for peers not in `peers`, `{node}` standing for the node id:
    /// `http://{node}.runbox-nodes:8080` for a StatefulSet behind a headless Service. Empty: none.
    pub peer_url: String,
    /// How long a forwarded request may take to connect to its owner before the session counts as lost
    /// (`410 session_lost`). Bounded so that a gone node is reported at once, never waited for.
    pub connect_timeout_ms: u64,
    /// After SIGTERM, how long the node keeps serving new requests while unready (so that the front door and
    /// the orchestrator stop sending them) before it drains; the drain itself is bounded by `shutdown_grace_ms`.
    pub drain_delay_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            peers: BTreeMap::new(),
            peer_url: String::new(),
            connect_timeout_ms: 500,
            drain_delay_ms: 0,
        }
    }
}

/// The longest node id: a session id (`sess_` + 32 hex digits + `_` + node) also names its sandbox, which takes
/// at most 64 characters.
pub const MAX_NODE_ID_CHARS: usize = 26;

impl ClusterConfig {
    /// Whether this node has peers at all. Alone, nothing about it changes.
    pub fn enabled(&self) -> bool {
        !self.peers.is_empty() || !self.peer_url.is_empty()
    }

    /// Checks the peers and the pattern; `node` is this node's id (see [`node_id`]).
    pub fn validate(&self, node: &str) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        check_node_id(node).map_err(|e| {
            format!("{e} (this node's id: set RUNBOX_NODE_ID or node_id; it defaults to the host name)")
        })?;
        for (name, url) in &self.peers {
            check_node_id(name).map_err(|e| format!("cluster.peers: {e}"))?;
            check_base_url(url).map_err(|e| format!("cluster.peers.{name}: {e}"))?;
        }
        if !self.peer_url.is_empty() {
            if !self.peer_url.contains("{node}") {
                return Err("cluster.peer_url must contain {node}".into());
            }
            // A session id names its node, and a caller chooses the id: `{node}` must only pick a name under a
            // domain the operator gives (`{node}.runbox-nodes`), never a whole host name (`http://{node}:8080`
            // would forward a caller's request to any host of the network, `redis` included).
            let host_start = self.peer_url.find("://").map_or(0, |i| i + 3);
            if !self.peer_url[host_start..].starts_with("{node}.") || self.peer_url.matches("{node}").count() != 1 {
                return Err(
                    "cluster.peer_url must start its host with {node} followed by a domain of the nodes' own \
                     (e.g. http://{node}.runbox-nodes:8080), so that an id cannot name just any host"
                        .into(),
                );
            }
            check_base_url(&self.peer_url.replace("{node}", "n")).map_err(|e| format!("cluster.peer_url: {e}"))?;
        }
        if self.connect_timeout_ms == 0 || self.connect_timeout_ms > 10_000 {
            return Err("cluster.connect_timeout_ms must be between 1 and 10000".into());
        }
        Ok(())
    }
}

/// A node id is a DNS label short enough to live inside ids: 1 to [`MAX_NODE_ID_CHARS`] of `[a-z0-9-]`, not
/// starting or ending with `-`. A StatefulSet's pod names (`runbox-0`) are such labels.
pub fn check_node_id(node: &str) -> Result<(), String> {
    let ok = !node.is_empty()
        && node.len() <= MAX_NODE_ID_CHARS
        && node
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !node.starts_with('-')
        && !node.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node id {node:?} is not 1 to {MAX_NODE_ID_CHARS} lowercase letters, digits and inner dashes"
        ))
    }
}

fn check_base_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{raw:?} is not an http(s) URL with a host"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!("{raw:?} must be a base URL: scheme, host and port only"));
    }
    Ok(())
}

/// This node's id: `node_id` from the configuration (`RUNBOX_NODE_ID`) or, when empty, the host name, which is
/// the pod name in a StatefulSet.
pub fn node_id(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// Parses `RUNBOX_CLUSTER_PEERS`: `n1=http://a:8080,n2=http://b:8080`.
pub fn parse_peers(raw: &str) -> Result<toml::Table, String> {
    let mut table = toml::Table::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, url) = item
            .split_once('=')
            .ok_or_else(|| format!("RUNBOX_CLUSTER_PEERS: {item:?} is not node=url"))?;
        table.insert(name.trim().to_string(), toml::Value::String(url.trim().to_string()));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_url_pattern_may_only_pick_a_name_under_the_nodes_own_domain() {
        let with = |pattern: &str| ClusterConfig {
            peer_url: pattern.into(),
            ..ClusterConfig::default()
        };
        with("http://{node}.runbox-nodes:8080").validate("n1").unwrap();
        with("https://{node}.runbox-nodes.prod.svc.cluster.local")
            .validate("n1")
            .unwrap();
        // A whole host name from the caller's id (`sess_…_redis` would reach http://redis:8080).
        for bad in [
            "http://{node}:8080",
            "http://{node}",
            "http://nodes-{node}.x:8080",
            "http://{node}.{node}.x",
        ] {
            let err = with(bad).validate("n1").unwrap_err();
            assert!(err.contains("cluster.peer_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn node_ids_are_short_dns_labels() {
        for good in ["runbox-0", "n1", "a", "abcdefghijklmnopqrstuvwxyz"] {
            check_node_id(good).unwrap();
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", "a/b", "abcdefghijklmnopqrstuvwxyz0"] {
            assert!(check_node_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn peers_must_be_base_urls() {
        let mut c = ClusterConfig::default();
        c.peers.insert("n1".into(), "http://127.0.0.2:8080".into());
        c.validate("n1").unwrap();
        for bad in ["127.0.0.2:8080", "ftp://h", "http://h/x", "http://h?q", "http://u@h"] {
            c.peers.insert("n2".into(), bad.into());
            assert!(c.validate("n1").is_err(), "{bad}");
        }
        let c = ClusterConfig {
            peer_url: "http://runbox-nodes:8080".into(),
            ..Default::default()
        };
        assert!(c.validate("n1").is_err());
    }

    #[test]
    fn the_peers_variable_is_a_comma_separated_table() {
        let t = parse_peers("n1=http://a:1, n2=http://b:2").unwrap();
        assert_eq!(t.get("n2").and_then(|v| v.as_str()), Some("http://b:2"));
        assert!(parse_peers("n1").is_err());
    }
}
