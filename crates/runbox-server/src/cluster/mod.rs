//! Several runbox nodes behind one front door (any round-robin load balancer). Stateless runs need nothing from
//! here; what needs routing is state that lives in one node's memory: sessions (and async executions while the
//! job store is the node's own SQLite file).
//!
//! - Every such id names its node: `sess_<boot><hex>_<node>` (32 hex digits, the first 8 this life of the node;
//!   node ids are `[a-z0-9-]`, so the last `_` splits).
//!   A node alone (no `[cluster]` peers) makes today's ids, `sess_<32 hex>`, and every id without a node part
//!   is its own: single-node ids stay valid.
//! - A request for a session owned by another node is forwarded to the owner ([`forward`]), streaming both ways;
//!   a WebSocket cell for such a session is run through the owner's SSE route ([`ws_cell`]).
//! - A node that cannot be reached within `cluster.connect_timeout_ms` has lost its sessions: `410 session_lost`
//!   naming the node; a node shutting down ends its sessions and says so (`reason: node_draining`, [`drain`]).

pub mod config;
pub mod drain;
pub mod forward;
pub mod list;
pub mod ws_cell;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::config::ServerConfig;

/// What an id says about where its state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Here: no node part, or this node's id.
    Local,
    /// Another node, reachable at this base URL.
    Peer { node: String, base: String },
    /// A node this one does not know how to reach (no peer entry and no pattern).
    Unknown { node: String },
}

/// This node's view of the cluster.
pub struct Cluster {
    /// This node's id (also when alone, for logs and `/health`).
    pub node: String,
    /// This life of the node: 8 random hex digits at the start of its session ids (after `sess_`). A session id of
    /// this node with another boot id is from an earlier life, whose sessions ended with it.
    pub boot: String,
    /// Boot ids of earlier lives of this node (same data directory) that drained cleanly.
    drained_boots: HashSet<String>,
    drained_file: std::path::PathBuf,
    enabled: bool,
    peers: BTreeMap<String, String>,
    pattern: String,
    client: reqwest::Client,
    /// Set once a draining node has ended its sessions: its session routes answer `410 session_lost`
    /// (`node_draining`) until it stops listening.
    pub sessions_ended: AtomicBool,
    /// Set at SIGTERM: readiness answers 503 while the node still serves (see [`drain`]).
    pub unready: AtomicBool,
    /// Peers that said they were draining: once they stop answering, their sessions are reported lost with
    /// `node_draining` rather than `node_unreachable`.
    draining_peers: Mutex<HashSet<String>>,
    /// Whether async executions live in this node's own store (SQLite), so that requests for another node's
    /// executions are forwarded to it. A store shared by every node (PostgreSQL) sets this to false: any node
    /// then answers for any execution.
    pub jobs_node_local: AtomicBool,
}

/// Hex digits of a boot id.
const BOOT_CHARS: usize = 8;

/// Boot ids of lives of this node that drained cleanly, one a line, in the data directory.
const DRAINED_BOOTS_FILE: &str = "cluster-drained-boots";

/// The id suffix of this process's async executions (`_node` in a cluster, empty alone): set once when the
/// server starts (see [`Cluster::install_execution_ids`]); the job store appends it to the ids it makes.
static EXECUTION_ID_SUFFIX: OnceLock<String> = OnceLock::new();

/// What the job store appends to a new execution id.
pub fn execution_id_suffix() -> &'static str {
    EXECUTION_ID_SUFFIX.get().map_or("", String::as_str)
}

impl Cluster {
    pub fn new(config: &ServerConfig) -> Cluster {
        let node = config::node_id(&config.node_id);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.cluster.connect_timeout_ms.max(1)))
            .pool_idle_timeout(Duration::from_secs(30))
            // Forwarded requests must reach the owner as sent: no redirects followed, no proxy from the environment.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap_or_default();
        let drained_file = config.data_dir.join(DRAINED_BOOTS_FILE);
        let drained_boots = std::fs::read_to_string(&drained_file)
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        Cluster {
            boot: crate::jobs::random_id("")[..BOOT_CHARS].to_string(),
            drained_boots,
            drained_file,
            enabled: config.cluster.enabled(),
            peers: config.cluster.peers.clone(),
            pattern: config.cluster.peer_url.clone(),
            node,
            client,
            sessions_ended: AtomicBool::new(false),
            unready: AtomicBool::new(false),
            draining_peers: Mutex::new(HashSet::new()),
            jobs_node_local: AtomicBool::new(true),
        }
    }

    /// Whether this node has peers.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// What this node appends to the ids it makes: `_node` in a cluster, nothing alone.
    pub fn id_suffix(&self) -> String {
        if self.enabled {
            format!("_{}", self.node)
        } else {
            String::new()
        }
    }

    /// Makes the session ids of this state carry the node and its boot id. Called by [`crate::build_state`]; a
    /// node alone changes nothing.
    pub fn install(&self, sessions: &runbox_engine::sessions::Sessions) {
        if self.enabled {
            sessions.set_id_shape(&self.boot, &self.id_suffix());
        }
    }

    /// Makes the execution ids this process creates carry the node ([`execution_id_suffix`], process-wide: one
    /// server a process). Called by [`crate::serve`].
    pub fn install_execution_ids(&self) {
        if self.enabled {
            let _ = EXECUTION_ID_SUFFIX.set(self.id_suffix());
        }
    }

    /// Where the state of `id` (`sess_…`, `exec_…`) lives.
    pub fn owner_of(&self, id: &str) -> Owner {
        let Some(node) = node_of(id) else {
            return Owner::Local;
        };
        if node == self.node {
            return Owner::Local;
        }
        if let Some(base) = self.peers.get(node) {
            return Owner::Peer {
                node: node.to_string(),
                base: base.trim_end_matches('/').to_string(),
            };
        }
        // The node part was checked to be a DNS label, so the pattern cannot be steered to another host.
        if !self.pattern.is_empty() {
            return Owner::Peer {
                node: node.to_string(),
                base: self.pattern.replace("{node}", node).trim_end_matches('/').to_string(),
            };
        }
        Owner::Unknown { node: node.to_string() }
    }

    /// The peers listed in `cluster.peers` (node id, base URL without a trailing `/`).
    pub fn peers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.peers.iter().map(|(n, u)| (n.as_str(), u.trim_end_matches('/')))
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub(crate) fn note_draining(&self, node: &str) {
        self.draining_peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_string());
    }

    /// Why a peer's sessions are lost when it cannot be reached.
    pub(crate) fn lost_reason(&self, node: &str) -> &'static str {
        if self
            .draining_peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(node)
        {
            "node_draining"
        } else {
            "node_unreachable"
        }
    }

    /// Whether a session id that names this node comes from an earlier life of it, and if so why its sessions
    /// are gone: `node_draining` when that life drained cleanly (and this one shares its data directory),
    /// `node_restarted` otherwise.
    pub fn earlier_life(&self, id: &str) -> Option<&'static str> {
        if !self.enabled || node_of(id) != Some(self.node.as_str()) {
            return None;
        }
        let boot = id.split_once('_')?.1.get(..BOOT_CHARS)?;
        if boot == self.boot {
            return None;
        }
        Some(if self.drained_boots.contains(boot) {
            "node_draining"
        } else {
            "node_restarted"
        })
    }

    /// Records that this life drained cleanly, for the next life on the same data directory (the last 100 kept).
    pub fn record_drained(&self) {
        if !self.enabled {
            return;
        }
        let mut boots: Vec<String> = self.drained_boots.iter().cloned().collect();
        boots.sort();
        boots.push(self.boot.clone());
        let keep = boots.len().saturating_sub(100);
        if let Err(e) = std::fs::write(&self.drained_file, boots[keep..].join("\n") + "\n") {
            tracing::warn!(error = %e, "cannot record the drain for the next start");
        }
    }

    pub fn sessions_have_ended(&self) -> bool {
        self.sessions_ended.load(Ordering::Relaxed)
    }
}

/// The node part of an id: after the last `_` beyond the kind prefix (`sess_`, `exec_`), when it is a valid
/// node id. Ids without one (every id a single node makes) have none.
pub fn node_of(id: &str) -> Option<&str> {
    let (_, rest) = id.split_once('_')?;
    let (_, node) = rest.rsplit_once('_')?;
    config::check_node_id(node).ok().map(|()| node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(peers: &[(&str, &str)], pattern: &str) -> Cluster {
        let mut config = ServerConfig {
            node_id: "n1".into(),
            ..Default::default()
        };
        for (n, u) in peers {
            config.cluster.peers.insert(n.to_string(), u.to_string());
        }
        config.cluster.peer_url = pattern.into();
        Cluster::new(&config)
    }

    #[test]
    fn single_node_ids_are_local_everywhere() {
        let c = cluster(&[("n2", "http://127.0.0.3:8080")], "");
        assert_eq!(c.owner_of("sess_0123456789abcdef0123456789abcdef"), Owner::Local);
        assert_eq!(c.owner_of("exec_0123456789abcdef0123456789abcdef"), Owner::Local);
        assert_eq!(c.owner_of("nonsense"), Owner::Local);
    }

    #[test]
    fn an_id_names_its_node_and_the_node_its_address() {
        let c = cluster(&[("n2", "http://127.0.0.3:8080/")], "");
        assert_eq!(c.id_suffix(), "_n1");
        assert_eq!(c.owner_of("sess_abc_n1"), Owner::Local);
        assert_eq!(
            c.owner_of("sess_abc_n2"),
            Owner::Peer {
                node: "n2".into(),
                base: "http://127.0.0.3:8080".into()
            }
        );
        assert_eq!(c.owner_of("sess_abc_n9"), Owner::Unknown { node: "n9".into() });
        let c = cluster(&[], "http://{node}.runbox-nodes:8080");
        assert_eq!(
            c.owner_of("sess_abc_runbox-2"),
            Owner::Peer {
                node: "runbox-2".into(),
                base: "http://runbox-2.runbox-nodes:8080".into()
            }
        );
        // A node part that is not a DNS label never reaches the pattern.
        assert_eq!(c.owner_of("sess_abc_evil.example:1/x"), Owner::Local);
    }

    #[test]
    fn a_restarted_node_knows_its_earlier_lives_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            node_id: "n1".into(),
            data_dir: dir.path().into(),
            ..Default::default()
        };
        config.cluster.peers.insert("n2".into(), "http://127.0.0.3:8080".into());
        let first = Cluster::new(&config);
        let mine = format!("sess_{}000000000000000000000000_n1", first.boot);
        assert_eq!(first.earlier_life(&mine), None);
        assert_eq!(first.earlier_life("sess_0123456789abcdef0123456789abcdef"), None);
        let second = Cluster::new(&config);
        assert_eq!(second.earlier_life(&mine), Some("node_restarted"));
        first.record_drained();
        let third = Cluster::new(&config);
        assert_eq!(third.earlier_life(&mine), Some("node_draining"));
        assert_eq!(third.earlier_life(&mine.replace("_n1", "_n2")), None);
    }

    #[test]
    fn a_node_alone_makes_todays_ids() {
        let c = Cluster::new(&ServerConfig::default());
        assert!(!c.enabled());
        assert_eq!(c.id_suffix(), "");
    }
}
