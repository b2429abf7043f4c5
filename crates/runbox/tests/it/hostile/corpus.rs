//! The hostile corpus runner: every case under `tests/hostile/*.toml` (programs and requests that attack runbox,
//! each with its expected outcome, see `tests/hostile/README.md`) against one real `runbox serve` with two API keys.
//! It prints one line per case and a closing `N passed, N failed`, and fails on any failure.
//!
//! Besides each case's own expectations, every case is held to the same host-side rules: no response is a 5xx or
//! breaks `openapi.json`; no response ever carries the host's secret (a random token in files the sandbox must not
//! reach); the secret files are unchanged; no process carrying the case's marker is left; at rest, every workspace,
//! mount and cgroup of the server belongs to a live sandbox; and the server still runs `print(1)` right.
//! One test of the `it` binary (`cargo test -p runbox --test it hostile::`); its lines go straight to stdout (`say!`),
//! so `cargo test` shows them as they come. `HOSTILE_FILTER=word` runs only the cases whose
//! `family/name` contains `word`.

use std::time::Instant;

use crate::hostile;

#[test]
fn every_hostile_case_is_contained() {
    if nix::unistd::geteuid().as_raw() != 0 {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "hostile corpus: must run as root (CI=true: not skipped)"
        );
        say!("hostile corpus SKIPPED: runbox serve needs root for its sandboxes");
        return;
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/hostile");
    let families = hostile::case::load_all(&dir).unwrap_or_else(|e| panic!("hostile corpus: {e}"));
    let filter = std::env::var("HOSTILE_FILTER").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let (passed, failed) = runtime.block_on(hostile::run::run_all(&families, &filter));
    say!(
        "hostile corpus: {} cases in {:.1} s",
        passed + failed,
        started.elapsed().as_secs_f64()
    );
    say!("{passed} passed, {failed} failed");
    assert!(
        failed == 0 && passed > 0,
        "hostile corpus: {passed} passed, {failed} failed"
    );
}
