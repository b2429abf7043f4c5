#!/usr/bin/env bash
# Regenerates the TypeScript client (src/generated/) from the repository's committed openapi.json with the pinned
# orval. With --check, changes nothing and fails when the committed client is stale against openapi.json (CI runs
# this; after changing or merging openapi.json, run it without --check and commit the result).
#
# Usage: clients/typescript/scripts/generate.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/orval ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

generate() {
    rm -rf src/generated
    # orval's own banner and its opinion of the spec go to the log; a failure still fails the script.
    node_modules/.bin/orval --config orval.config.cjs >"${TMPDIR:-/tmp}/runbox-orval.log" 2>&1 || {
        cat "${TMPDIR:-/tmp}/runbox-orval.log" >&2
        return 1
    }
}

if [ "${1:-}" = "--check" ]; then
    saved="$(mktemp -d)"
    cp -a src/generated "$saved/generated"
    restore() {
        rm -rf src/generated
        cp -a "$saved/generated" src/generated
        rm -rf "$saved"
    }
    trap restore EXIT
    generate
    if ! diff -ru "$saved/generated" src/generated >"$saved/diff"; then
        head -60 "$saved/diff" >&2
        echo "clients/typescript/src/generated is stale against openapi.json:" \
            "run 'bash clients/typescript/scripts/generate.sh' and commit the result" >&2
        exit 1
    fi
    echo "clients/typescript/src/generated matches openapi.json"
elif [ $# -eq 0 ]; then
    generate
    echo "regenerated clients/typescript/src/generated from openapi.json"
else
    echo "usage: $0 [--check]" >&2
    exit 2
fi
