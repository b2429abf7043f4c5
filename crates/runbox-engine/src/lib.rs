//! The engine: turns an [`ExecuteRequest`] into sandboxed stages and one [`ExecutionResult`], keeps warm
//! [`pools`] and the [`compile_cache`], and runs stateful [`sessions`] with their [`files`]. It knows languages
//! (through `runbox-lang`) and sandboxes (through `runbox-sandbox`), and nothing of HTTP. Calls block; async
//! callers run them on a blocking thread.

#[cfg(feature = "openapi")]
pub mod api_schema;
pub mod collect;
pub mod compile_cache;
pub mod data_dir;
mod error;
mod execute;
pub mod files;
pub mod host;
pub mod ledger;
mod limits;
pub mod machine;
mod owner;
pub mod paths;
pub mod pools;
mod request;
mod result;
pub mod sessions;
pub mod sync;
pub mod trial;
mod zygotes;

use crate::sync::LockOrRecover;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use error::EngineError;
pub use execute::{ExecEvent, Prepared, Stage};
pub use owner::Swept;
pub use request::{whole, WORKSPACE_DIR_PATTERN, WORKSPACE_PATH_PATTERN};
pub use request::{Encoding, ExecuteRequest, LimitCaps, LimitOverrides, SourceFile, TestCase};
pub use result::{outputs_match, ExecutionResult, ExecutionStatus, TestCaseResult, TestSummary, Verdict};
pub use runbox_lang::{Availability, Catalogue, CatalogueEntry, Language};
pub use runbox_sandbox::{CancelToken, HostPolicy, Jail, OutputStream};

/// `N` random bytes from the kernel (`getrandom`, which never returns fewer bytes than asked below 256 and blocks
/// only before the pool is first seeded). The one reader of randomness for ids and tokens.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let mut filled = 0;
    while filled < N {
        // SAFETY: the pointer and length describe the unfilled tail of `bytes`, which lives across the call.
        let n = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), N - filled, 0) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // No getrandom (a kernel before 3.17): the device is the same pool.
            let _ = std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes[filled..]));
            break;
        }
        filled += n as usize;
    }
    bytes
}

/// 128 random bits as hex after `prefix`, from the kernel: ids nobody can guess.
pub fn random_id(prefix: &str) -> String {
    let hex: String = random_bytes::<16>().iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// Everything the engine needs from its host.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Operator's directory of language files overriding or adding to the embedded ones.
    pub languages_dir: Option<PathBuf>,
    /// Where workspaces live (under `runs/`).
    pub data_dir: PathBuf,
    pub policy: HostPolicy,
    pub caps: LimitCaps,
    pub jail: Jail,
    /// Bytes of compile artefacts kept for reuse (0 disables the compile cache).
    pub compile_cache_bytes: u64,
    /// Warm pools (they fill only once [`Engine::start_pools`] is called).
    pub pools: pools::PoolConfig,
}

pub struct Engine {
    config: EngineConfig,
    catalogue: Catalogue,
    /// Discovery results, filled lazily per language (a CLI run probes one language, a server all of them).
    availability: Mutex<BTreeMap<String, Availability>>,
    compile_cache: compile_cache::CompileCache,
    pools: std::sync::Arc<pools::Pools>,
    /// This engine's share of the data directory (see [`owner`]), held for its whole life.
    owner_lock: Option<std::fs::File>,
    /// What each key's sandboxes reserve (see [`ledger`]).
    ledger: std::sync::Arc<ledger::Ledger>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        data_dir::prepare(&config.data_dir).map_err(|e| {
            EngineError::invalid(
                "data_dir",
                format!("cannot prepare the data directory {}: {e}", config.data_dir.display()),
            )
        })?;
        let catalogue = Catalogue::load(config.languages_dir.as_deref())?;
        let owner_lock = owner::claim(&config.data_dir);
        let compile_cache = compile_cache::CompileCache::new(
            config.data_dir.join("cache").join("compile"),
            config.compile_cache_bytes,
        );
        if compile_cache.enabled() {
            compile_cache
                .prepare()
                .map_err(|e| EngineError::invalid("data_dir", format!("cannot create the compile cache: {e}")))?;
        }
        let pooled_langs = catalogue
            .iter()
            .map(|l| {
                let mut limits = limits::layered(l.run().limits(), None);
                // Wall and CPU limits arrive with each request; the rlimit backstop uses the maximum.
                limits.wall_ms = config.caps.timeout_ms;
                limits.cpu_ms = config.caps.cpu_ms;
                (l.clone(), limits)
            })
            .collect();
        let pools = std::sync::Arc::new(pools::Pools::new(
            config.pools.clone(),
            pooled_langs,
            config.jail.clone(),
            config.policy.clone(),
            &config.data_dir,
        ));
        Ok(Engine {
            config,
            catalogue,
            availability: Mutex::new(BTreeMap::new()),
            compile_cache,
            pools,
            owner_lock,
            ledger: Default::default(),
        })
    }

    /// When no other engine uses the data directory: ends every sandbox a dead predecessor left there and removes
    /// its cgroups and workspaces (see [`owner`]). [`host::Host::start`] calls this once, before anything runs.
    pub fn sweep_leftovers(&self) -> Swept {
        match &self.owner_lock {
            Some(lock) => owner::sweep(lock, &self.config.data_dir, &self.config.policy),
            None => Swept::default(),
        }
    }

    /// Starts filling the warm pools in the background (a host whose background includes pools calls this).
    /// Languages whose runtime is missing are not pooled.
    pub fn start_pools(&self) {
        for id in self.pools.languages() {
            let available = self
                .resolve(&id)
                .map(|l| self.availability(l).available)
                .unwrap_or(false);
            if !available {
                self.pools.disable(&id);
            }
        }
        self.pools.start();
    }

    pub fn pool_stats(&self) -> Vec<pools::PoolStats> {
        self.pools.stats()
    }

    /// Kills every warm sandbox (shutdown).
    pub fn drain_pools(&self) {
        self.pools.drain();
    }

    /// Host pids of the warm pools' zygote jails, by language (diagnostics and tests).
    pub fn zygote_pids(&self) -> Vec<(String, u32)> {
        self.pools.zygote_pids()
    }

    pub(crate) fn pools(&self) -> &pools::Pools {
        &self.pools
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// What each key's sandboxes reserve; the server sets its caps.
    pub fn ledger(&self) -> &std::sync::Arc<ledger::Ledger> {
        &self.ledger
    }

    /// Reserves for `owner` the memory and processes a prepared run may use (its largest stage), or says which of
    /// the key's caps it would pass.
    pub fn reserve_run(&self, owner: &str, prepared: &Prepared) -> Result<ledger::Reservation, String> {
        let (memory, processes) = prepared.footprint();
        self.ledger.reserve(owner, memory, processes)
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Probes every language not probed yet (in parallel) and returns the whole catalogue.
    pub fn languages(&self) -> Vec<CatalogueEntry> {
        let missing: Vec<&Language> = {
            let known = self.availability.lock_or_recover();
            self.catalogue.iter().filter(|l| !known.contains_key(l.id())).collect()
        };
        let found: Vec<(String, Availability)> = std::thread::scope(|scope| {
            let handles: Vec<_> = missing
                .iter()
                .map(|&lang| {
                    let probe = move || runbox_lang::discovery::probe(lang, runbox_lang::discovery::VERSION_TIMEOUT);
                    (lang.id().to_string(), scope.spawn(probe))
                })
                .collect();
            handles
                .into_iter()
                .map(|(id, h)| {
                    let a = h.join().unwrap_or_else(|_| Availability {
                        available: false,
                        version: None,
                        reason: Some("discovery failed".into()),
                    });
                    (id, a)
                })
                .collect()
        });
        self.availability.lock_or_recover().extend(found);
        let known = self.availability.lock_or_recover();
        self.catalogue
            .iter()
            .map(|l| CatalogueEntry::new(l, known.get(l.id()).expect("probed above")))
            .collect()
    }

    /// Whether `lang` can run here (probed once, then cached).
    pub fn availability(&self, lang: &Language) -> Availability {
        if let Some(a) = self.availability.lock_or_recover().get(lang.id()) {
            return a.clone();
        }
        let found = runbox_lang::discovery::probe(lang, runbox_lang::discovery::VERSION_TIMEOUT);
        self.availability
            .lock_or_recover()
            .insert(lang.id().to_string(), found.clone());
        found
    }

    /// Finds a language by id or alias (case-insensitive).
    pub fn resolve(&self, name: &str) -> Result<&Language, EngineError> {
        self.catalogue
            .get(name)
            .ok_or_else(|| EngineError::UnknownLanguage(name.to_string()))
    }

    /// A name for a run that no other run of this host shares.
    pub fn new_run_id(&self) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        format!(
            "r{}-{:x}-{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.config.data_dir.join("runs")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_ids_are_128_bits_of_hex_after_their_prefix_and_differ() {
        let (a, b) = (super::random_id("x_"), super::random_id("x_"));
        assert_eq!(a.len(), 2 + 32);
        assert!(a.starts_with("x_") && a[2..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_ne!(super::random_bytes::<32>(), [0u8; 32]);
    }
}
