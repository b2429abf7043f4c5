#!/usr/bin/env bash
# Installs the MCP test client (the official Python SDK, pinned in requirements.txt, its dependencies in
# constraints.txt) into tests/clients/mcp/.venv, a virtual environment made with Debian's own Python; installs
# python3-venv when that Python cannot make one.
# Does nothing when the venv already holds these requirements.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python=/usr/bin/python3
stamp="$venv/.requirements"

if [ ! -x "$python" ]; then
    echo "install.sh: $python is missing (apt-get install python3)" >&2
    exit 1
fi
wanted="$(cat "$here/requirements.txt" "$here/constraints.txt")"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    exit 0
fi
rm -rf "$venv"
# Debian leaves ensurepip (which venv needs) to the python3-venv package.
if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
printf '%s' "$wanted" > "$stamp"
