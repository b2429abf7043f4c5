#!/usr/bin/env bash
# The MCP client tests: installs the official MCP Python SDK (install.sh), builds runbox, and drives `runbox mcp`
# (stdio) and `/mcp` (streamable HTTP on `runbox serve`) with it. Under CI=true a missing tool fails; it never skips.
set -euo pipefail
cd "$(dirname "$0")/../../.."

if ! bash tests/clients/mcp/install.sh; then
    echo "mcp client tests: cannot install the MCP Python SDK" >&2
    exit 1
fi
cargo build --quiet -p runbox --bins
RUNBOX_BIN="$PWD/target/debug/runbox" exec tests/clients/mcp/.venv/bin/python tests/clients/mcp/test_mcp.py
