#!/usr/bin/env bash
# Installs the MCP test client (the official Python SDK, pinned in requirements.txt) into tests/clients/mcp/.venv,
# a virtual environment made with Debian's own Python. Installs python3-venv when that Python lacks it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python=/usr/bin/python3

if [ ! -x "$python" ]; then
    echo "install.sh: $python is missing (apt-get install python3)" >&2
    exit 1
fi
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s "$here/requirements.txt" "$stamp"; then
    exit 0 # already installed with these requirements
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cp "$here/requirements.txt" "$stamp"
