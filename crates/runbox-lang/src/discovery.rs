//! Which languages this host can actually run, and at which version.
//!
//! Exists because the catalogue says what runbox *could* run; whether the
//! runtime is installed is a property of the host. Discovery runs in the
//! server or CLI process (never in the sandbox): it checks that each
//! language's binaries exist and are executable, then runs its version
//! command with a timeout, all languages in parallel. The result, as
//! [`CatalogueEntry`], is what `GET /languages` and `runbox languages --json`
//! print.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;
use crate::language::Language;

/// How long a version command may take.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this much of a version command's output is kept.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Whether one language can run on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// The binaries exist and the version command succeeded.
    pub available: bool,
    /// The version found by the version pattern.
    pub version: Option<String>,
    /// Why the language is unavailable (`/usr/bin/go not found`), or why its
    /// version is unknown although it is available.
    pub reason: Option<String>,
}

impl Availability {
    fn unavailable(reason: String) -> Availability {
        Availability {
            available: false,
            version: None,
            reason: Some(reason),
        }
    }
}

/// One language as the API and CLI list it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueEntry {
    /// Unique id (`python`).
    pub id: String,
    /// Human-readable name (`Python 3`).
    pub name: String,
    /// Other accepted names.
    pub aliases: Vec<String>,
    /// Installed version, if found.
    pub version: Option<String>,
    /// Whether runbox can run it on this host.
    pub available: bool,
    /// Why not, when `available` is false (or why `version` is unknown).
    pub reason: Option<String>,
    /// Whether it has a compile stage.
    pub compiled: bool,
    /// Whether stateful sessions are supported.
    pub sessions: bool,
    /// File extensions, without the dot.
    pub extensions: Vec<String>,
}

impl CatalogueEntry {
    /// Combines a language with its discovered availability.
    pub fn new(lang: &Language, availability: &Availability) -> CatalogueEntry {
        CatalogueEntry {
            id: lang.id().to_string(),
            name: lang.name().to_string(),
            aliases: lang.aliases().to_vec(),
            version: availability.version.clone(),
            available: availability.available,
            reason: availability.reason.clone(),
            compiled: lang.is_compiled(),
            sessions: lang.sessions(),
            extensions: lang.extensions().to_vec(),
        }
    }
}

/// Probes every language in parallel with [`VERSION_TIMEOUT`]; keyed by id.
pub fn discover(catalogue: &Catalogue) -> BTreeMap<String, Availability> {
    discover_with_timeout(catalogue, VERSION_TIMEOUT)
}

/// Like [`discover`], with a given timeout per version command.
pub fn discover_with_timeout(catalogue: &Catalogue, timeout: Duration) -> BTreeMap<String, Availability> {
    thread::scope(|scope| {
        let handles: Vec<_> = catalogue
            .iter()
            .map(|lang| (lang.id().to_string(), scope.spawn(move || probe(lang, timeout))))
            .collect();
        handles
            .into_iter()
            .map(|(id, handle)| {
                let availability = handle
                    .join()
                    .unwrap_or_else(|_| Availability::unavailable("discovery panicked".to_string()));
                (id, availability)
            })
            .collect()
    })
}

/// Discovers every language and returns the listing, sorted by id.
pub fn catalogue_entries(catalogue: &Catalogue) -> Vec<CatalogueEntry> {
    let found = discover(catalogue);
    catalogue
        .iter()
        .map(|lang| {
            let availability = found
                .get(lang.id())
                .cloned()
                .unwrap_or_else(|| Availability::unavailable("not probed".to_string()));
            CatalogueEntry::new(lang, &availability)
        })
        .collect()
}

/// Probes one language: its binaries, then its version command.
pub fn probe(lang: &Language, timeout: Duration) -> Availability {
    for binary in lang.host_binaries() {
        if let Err(reason) = check_executable(binary) {
            return Availability::unavailable(reason);
        }
    }
    let probe = lang.version_probe();
    let shown = probe.argv().join(" ");
    match run_with_timeout(probe.argv(), timeout) {
        Err(reason) => Availability::unavailable(format!("`{shown}`: {reason}")),
        Ok(output) => match probe.extract(&output) {
            Some(version) => Availability {
                available: true,
                version: Some(version),
                reason: None,
            },
            None => Availability {
                available: true,
                version: None,
                reason: Some(format!(
                    "version pattern {:?} did not match the output of `{shown}`",
                    probe.pattern().as_str()
                )),
            },
        },
    }
}

fn check_executable(path: &Path) -> Result<(), String> {
    match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("{} not found", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
        Ok(meta) if !meta.is_file() => Err(format!("{} is not a regular file", path.display())),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Err(format!("{} is not executable", path.display())),
        Ok(_) => Ok(()),
    }
}

/// Runs `argv` with no stdin and the C locale; returns stdout followed by
/// stderr if it exits 0 within `timeout`.
fn run_with_timeout(argv: &[String], timeout: Duration) -> Result<String, String> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let deadline = Instant::now() + timeout;

    // Readers on their own threads so a chatty child cannot block on a full
    // pipe; results come back over channels so a grandchild holding a pipe
    // open cannot make us wait past the deadline.
    let stdout = child.stdout.take().map(spawn_reader);
    let stderr = child.stderr.take().map(spawn_reader);

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {} ms", timeout.as_millis()));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait: {e}")),
        }
    };

    let mut output = String::new();
    for rx in [stdout, stderr].into_iter().flatten() {
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        if let Ok(bytes) = rx.recv_timeout(remaining) {
            output.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    if !status.success() {
        let first_line = output.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        return Err(format!("exited with {status}: {first_line}"));
    }
    Ok(output)
}

fn spawn_reader<R: Read + Send + 'static>(pipe: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let mut limited = pipe.take(MAX_OUTPUT);
        let _ = limited.read_to_end(&mut buf);
        // Drain the rest so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
        let _ = tx.send(buf);
    });
    rx
}
