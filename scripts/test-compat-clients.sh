#!/usr/bin/env bash
# Runs the real Judge0 and Piston clients (tests/clients/, installed by scripts/install-compat-clients.sh)
# against a real `runbox serve` that the tests start on 127.0.0.9. Under CI=true a missing tool fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -p runbox --quiet
venv=tests/clients/.venv
if [ ! -x "$venv/bin/python" ]; then
    echo "tests/clients/.venv is missing: run scripts/install-compat-clients.sh" >&2
    exit 1
fi
# Only the Judge0 and Piston tests: tests/clients/mcp has its own environment and runner.
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/clients/test_judge0_sdk.py tests/clients/test_piston_clients.py "$@"
