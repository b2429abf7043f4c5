#!/usr/bin/env bash
# Installs the third-party clients the drop-in Judge0 and Piston routes are tested with (tests/clients/): the
# official Judge0 Python SDK and pistonapi, pinned, in a venv of Debian's own Python (tests/clients/.venv), and
# piston-client from npm, pinned by tests/clients/piston-client/package-lock.json. Idempotent; run as root on
# Debian 12 (it installs python3-venv and nodejs/npm when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

venv=tests/clients/.venv
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt

(cd tests/clients/piston-client && npm ci --no-audit --no-fund --silent)
