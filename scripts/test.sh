#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian 12 machine (run as root), then runs every check:
# formatting, clippy with warnings as errors, and the whole test suite with every language runtime required.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-runtimes.sh

# Tests fail (never skip) when a language runtime is missing.
export RUNBOX_REQUIRE_RUNTIMES=1

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

# The MCP server driven by the official MCP Python SDK (stdio and streamable HTTP, against a real runbox).
bash tests/clients/mcp/run.sh
