//! Helpers for the session tests: the API in process through the workspace's one in-process client
//! ([`runbox_testkit::app`], which checks every response against the committed `openapi.json`), with sandboxes run
//! by this crate's binary, key `a` sent by default when there are keys, and 90 s per call; plus ways to create a
//! session marked so that its processes can be found on the host, and to find them.
#![allow(dead_code)]

pub use runbox_testkit::app::{key, within, Reply, TestApp, KEY_A, KEY_B};
use runbox_testkit::procs;

use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use runbox_engine::Jail;
use runbox_server::ServerConfig;
use serde_json::{json, Value};

/// The environment variable every test session carries, so that its processes can be found on the host.
pub const MARK_VAR: &str = "RUNBOX_TEST_SESSION_MARK";

/// How long a call of a session test may take: a cell may wait for a sandbox on a busy host.
const CALL_TIMEOUT_SECS: u64 = 90;

pub fn jail() -> Jail {
    Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()])
}

/// A mark no other session of any test process uses.
pub fn unique_mark() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "m{}-{}-{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The in-process app ([`TestApp`], whose calls it offers through `Deref`) with the session steps the tests repeat.
pub struct Api(TestApp);

impl Deref for Api {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.0
    }
}

impl Api {
    /// The API over a fresh state; `configure` changes the default configuration.
    pub fn new(configure: impl FnOnce(&mut ServerConfig)) -> Api {
        Api(TestApp::new(jail(), configure).with_timeout(CALL_TIMEOUT_SECS))
    }

    /// The API with the default configuration.
    pub fn plain() -> Api {
        Api::new(|_| {})
    }

    /// The API with keys `a` ([`KEY_A`], the default) and `b` ([`KEY_B`]).
    pub fn with_two_keys(configure: impl FnOnce(&mut ServerConfig)) -> Api {
        let app = TestApp::new(jail(), |c| {
            runbox_testkit::app::two_keys(c);
            configure(c);
        });
        Api(app.with_timeout(CALL_TIMEOUT_SECS).with_default_key(KEY_A))
    }

    /// Creates a session (`body` is the request; a test mark is added to its `env`) and returns its id and mark.
    pub async fn create_marked(&self, key: Option<&str>, mut body: Value) -> (String, String) {
        let mark = unique_mark();
        body["env"][MARK_VAR] = json!(mark);
        let mut call = self.post("/sessions", body);
        if let Some(k) = key {
            call = call.key(k);
        }
        let info = call.send().await.expect(201);
        assert_eq!(info["state"], "idle", "a new session is idle: {info}");
        (info["id"].as_str().expect("an id").to_string(), mark)
    }

    /// Creates a session of `language` with the default key and returns its id.
    pub async fn create(&self, language: &str) -> String {
        self.create_marked(None, json!({ "language": language })).await.0
    }

    /// Runs a cell and returns its result (asserting 200).
    pub async fn exec(&self, id: &str, code: &str) -> Value {
        self.exec_body(id, json!({ "code": code })).await.expect(200)
    }

    /// Runs a cell, asserting it ended `ok`, and returns its result.
    #[track_caller]
    pub fn exec_ok<'a>(&'a self, id: &'a str, code: &'a str) -> impl Future<Output = Value> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let r = self.exec(id, code).await;
            assert_eq!(r["status"], "ok", "cell {code:?} failed (called at {caller}): {r:#}");
            r
        }
    }

    pub async fn exec_body(&self, id: &str, body: Value) -> Reply {
        self.post(&format!("/sessions/{id}/execute"), body).send().await
    }

    pub async fn info(&self, id: &str) -> Value {
        self.get(&format!("/sessions/{id}")).send().await.expect(200)
    }
}

/// The data of the first output of `mime` in a cell result's `outputs`.
pub fn output_of<'a>(result: &'a Value, mime: &str) -> Option<&'a str> {
    result["outputs"]
        .as_array()?
        .iter()
        .find(|o| o["mime_type"] == mime)
        .and_then(|o| o["data"].as_str())
}

/// Decodes base64 PNG data and checks it is a real, non-trivial PNG; returns its bytes.
#[track_caller]
pub fn assert_png(data: &str) -> Vec<u8> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap_or_else(|e| panic!("image/png is not base64 ({e})"));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &bytes[..bytes.len().min(16)]
    );
    assert!(bytes.len() > 2000, "a plot is more than {} bytes of PNG", bytes.len());
    assert_eq!(&bytes[12..16], b"IHDR", "the first chunk of a PNG is IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width >= 100 && height >= 100, "a plot of {width}x{height} pixels");
    assert!(bytes.ends_with(b"IEND\xaeB`\x82"), "a PNG ends with IEND");
    bytes
}

/// Live (not zombie) host processes whose environment holds `MARK_VAR=mark`: the session's worker and whatever
/// it started.
pub fn processes_with_mark(mark: &str) -> Vec<String> {
    let needle = format!("{MARK_VAR}={mark}");
    procs::processes()
        .into_iter()
        .map(|(pid, _, _)| pid)
        .filter(|&pid| procs::has_env(pid, &needle) && procs::is_live(pid))
        .map(|pid| format!("{pid}: {}", procs::cmdline(pid)))
        .collect()
}

/// Live `runbox jail` processes this test process started (session sandboxes are its children), as pids. Other
/// tests of this process start jails too: a test finds its own by their marked workers.
pub fn my_jails() -> Vec<String> {
    procs::children_of(std::process::id())
        .into_iter()
        .filter(|&pid| procs::args(pid).iter().any(|a| a == b"jail") && procs::is_live(pid))
        .map(|pid| pid.to_string())
        .collect()
}

/// Children of `parent` that have exited but were never waited for.
pub fn zombie_children_of(parent: u32) -> Vec<String> {
    procs::children_of(parent)
        .into_iter()
        .filter(|&pid| procs::state(pid) == Some('Z'))
        .map(|pid| pid.to_string())
        .collect()
}

/// Waits until no live process carries `mark`.
pub async fn wait_processes_gone(mark: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = processes_with_mark(mark);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the session's processes are still there after {secs} s: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
