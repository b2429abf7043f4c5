#!/usr/bin/env bash
# Property-based check of the HTTP API against its own OpenAPI document: schemathesis (pinned, installed here into
# a virtualenv under target/) runs `--checks all` against a real `runbox serve` on loopback, once without and once
# with an API key, bounded in examples and time, and must find nothing. Needs root (the server builds sandboxes).
#
# A missing tool (no Python, no network for pip) is a failure under CI=true and a loud skip elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
EXAMPLES="${RUNBOX_SCHEMATHESIS_EXAMPLES:-8}"
SECONDS_PER_RUN="${RUNBOX_SCHEMATHESIS_SECONDS:-75}"
TOOLS="${RUNBOX_TOOLS_DIR:-$PWD/target/tools}"
VENV="$TOOLS/schemathesis-$VERSION"

missing() {
    if [[ "${CI:-}" == "true" ]]; then
        echo "schemathesis: $1 (required under CI=true)" >&2
        exit 1
    fi
    echo "schemathesis: SKIPPED: $1" >&2
    exit 0
}

# A virtualenv that no longer runs (moved, or its interpreter replaced) is made anew.
if ! "$VENV/bin/st" --version >/dev/null 2>&1; then
    # Debian's interpreter, not a pyenv shim (slow to start, and may lack venv).
    PYTHON=/usr/bin/python3
    [[ -x "$PYTHON" ]] || PYTHON="$(command -v python3 || true)"
    [[ -n "$PYTHON" ]] || missing "no python3"
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null && command -v apt-get >/dev/null && [[ $EUID -eq 0 ]]; then
        apt-get install -y -qq python3-venv >/dev/null || true
    fi
    rm -rf "$VENV"
    mkdir -p "$TOOLS"
    "$PYTHON" -m venv "$VENV" || missing "cannot create a virtualenv (install python3-venv)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION" \
        || { rm -rf "$VENV"; missing "cannot install schemathesis==$VERSION with pip"; }
fi

cargo build -q -p runbox --bin runbox --bin runbox-jail
BIN="$PWD/target/debug/runbox"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/runbox-schemathesis.XXXXXX")"
chmod 755 "$WORK"
SERVER=""
cleanup() {
    if [[ -n "$SERVER" ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# One run: start a server with the given extra settings, wait for it, run schemathesis with the given options.
run() {
    local name="$1" addr="$2"; shift 2
    local settings=() options=()
    while [[ $# -gt 0 && "$1" != "--" ]]; do settings+=("$1"); shift; done
    shift
    options=("$@")
    mkdir -m 755 "$WORK/$name"
    "$BIN" serve --listen "$addr" --data-dir "$WORK/$name" --set sessions.max_per_owner=24 "${settings[@]}" \
        >"$WORK/$name.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do
        curl -sf "http://$addr/health" >/dev/null && break
        sleep 0.1
    done
    echo "schemathesis: $name ($addr)"
    local status=0
    # /ws and Piston's /api/v2/connect are WebSocket handshakes, not HTTP operations a fuzzer can drive; their
    # refusals are tested in Rust.
    # Responses may take up to 60 s: a session whose limits leave its runtime unable to start is known only when its
    # worker fails to come up (up to 30 s), and is then refused with a 422.
    # One worker: hypothesis describes strategies with ast.parse, which Python 3.11 cannot run in two threads.
    "$VENV/bin/st" --config-file scripts/schemathesis.toml run "http://$addr/openapi.json" \
        --checks all --exclude-path /ws --exclude-path /api/v2/connect \
        --max-examples "$EXAMPLES" --max-time "$SECONDS_PER_RUN" \
        --workers 1 --request-timeout 90 --max-response-time 60 --no-color --seed 1 "${options[@]}" || status=$?
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
    if [[ $status -ne 0 ]]; then
        echo "schemathesis: $name found failures; the server's log:" >&2
        tail -n 40 "$WORK/$name.log" >&2
        return "$status"
    fi
}

KEY="schemathesis-key-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# Without a key the server asks for none by design, so the check that auth is enforced does not apply.
run keyless 127.0.0.81:18481 -- --exclude-checks ignored_auth
run with-key 127.0.0.82:18482 --set "api_key=$KEY" -- -H "Authorization: Bearer $KEY"
echo "schemathesis: no failures"
