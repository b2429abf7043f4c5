#!/usr/bin/env bash
# Installs and tests the SDKs, each against a real `runbox serve` its tests start:
#   clients/python      in a venv made with Debian's /usr/bin/python3 (target/sdk-venv), with pytest;
#   clients/typescript  with `npm ci` from its package-lock.json: staleness check, tsc, Node test.
# Called by scripts/test.sh. Under CI=true a missing tool fails the run; elsewhere that SDK is skipped, saying so.
# Builds target/debug/runbox first (`cargo build -p runbox`) so the tests never run a stale server.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

log() { printf 'test-sdks: %s\n' "$*" >&2; }

# A missing tool: fatal in CI, a loud skip elsewhere (the caller then returns).
missing() {
    if [ "${CI:-}" = "true" ]; then
        log "FAIL: $* (CI=true: a missing tool fails, never skips)"
        exit 1
    fi
    log "SKIPPED: $*"
}

export RUNBOX_REQUIRE_RUNTIMES=1
cargo build -p runbox
export RUNBOX_BIN="$repo/target/debug/runbox"

python_sdk() {
    local py=/usr/bin/python3 venv="$repo/target/sdk-venv"
    [ -x "$py" ] || { missing "no $py for the Python SDK"; return 0; }
    if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null ||
                { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; }
        else
            missing "python3-venv is not installed (apt-get install python3-venv)"
            return 0
        fi
    fi
    # The venv is kept between runs while pyproject.toml is unchanged; the SDK itself is always reinstalled.
    local stamp
    stamp="$(sha256sum "$repo/clients/python/pyproject.toml" | cut -d' ' -f1)"
    # A venv that no longer runs (moved with its folder, or its interpreter replaced) is made anew.
    if [ "$(cat "$venv/.runbox-stamp" 2>/dev/null)" != "$stamp" ] || ! "$venv/bin/pip" --version >/dev/null 2>&1; then
        "$py" -m venv --clear "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$repo/clients/python[test]"
        echo "$stamp" >"$venv/.runbox-stamp"
    else
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall "$repo/clients/python"
    fi
    (cd "$repo/clients/python" && "$venv/bin/python" -m mypy --strict --cache-dir=/dev/null src/runbox)
    (cd "$repo/clients/python" && "$venv/bin/python" -m pytest -q -p no:cacheprovider)
}

typescript_client() {
    command -v node >/dev/null || { missing "no node for the TypeScript client"; return 0; }
    command -v npm >/dev/null || { missing "no npm for the TypeScript client"; return 0; }
    # npm ci (from the committed package-lock.json) unless node_modules was installed from this very lock file.
    local stamp
    stamp="$(sha256sum clients/typescript/package-lock.json | cut -d' ' -f1)"
    if [ "$(cat clients/typescript/node_modules/.runbox-stamp 2>/dev/null)" != "$stamp" ]; then
        (cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error)
        echo "$stamp" >clients/typescript/node_modules/.runbox-stamp
    fi
    bash clients/typescript/scripts/test.sh
}

python_sdk
typescript_client
