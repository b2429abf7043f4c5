#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian 12 machine (run as root), then runs every check:
# formatting, clippy with warnings as errors, the whole test suite with every language runtime required, and a
# schemathesis run of the HTTP API against its OpenAPI document (a missing schemathesis fails under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-runtimes.sh
bash scripts/install-compat-clients.sh
# PostgreSQL for the async jobs on a shared store (the tests start their own cluster; CI=true fails without it).
bash scripts/install-postgres.sh
# nginx for the cluster test (crates/runbox/tests/it/cluster/cluster_through_a_front_door.rs), kubernetes-validate
# for the manifests.
bash scripts/install-cluster-tools.sh

# Tests fail (never skip) when a language runtime is missing.
export RUNBOX_REQUIRE_RUNTIMES=1

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The runbox crate's integration tests are one binary, crates/runbox/tests/it (one area:
# `cargo test -p runbox --test it sessions::`). Includes the hostile corpus (tests/hostile/, a line per case then `N passed, N failed`; root needed,
# CI=true fails without it). Alone: cargo test -p runbox --test it hostile::
cargo test --workspace
# deploy/kubernetes against the API schemas of a current Kubernetes, offline.
bash scripts/validate-kubernetes.sh
bash scripts/schemathesis.sh

# A short soak (45 s): a mix at capacity (8 clients: on a 2-core CI machine the default 16 starve the runs so far
# that some hit their limits; see docs/reliability.md), then proof that nothing leaked; exits 1 on any error or leak.
cargo run -q -p runbox -- bench --soak 45 --soak-clients 8 --json target/soak.json

# The bounded fuzz run (stable: seeded property fuzzing of the four targets, 20 s each; see fuzz/tests/bounded.rs).
(cd fuzz && RUNBOX_FUZZ_SECONDS=20 CARGO_TARGET_DIR=../target cargo test --quiet)

# The Python SDK and the TypeScript client, each against a real server (see the script's header).
bash scripts/test-sdks.sh

# The real Judge0 and Piston clients against a real `runbox serve` (tests/clients/).
bash scripts/test-compat-clients.sh

# The MCP server driven by the official MCP Python SDK (stdio and streamable HTTP, against a real runbox).
bash tests/clients/mcp/run.sh
