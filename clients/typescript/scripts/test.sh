#!/usr/bin/env bash
# The TypeScript client's test: checks that the committed generated client matches openapi.json, type-checks it
# with tsc, compiles it, starts a real `runbox serve` (target/debug/runbox, or RUNBOX_BIN) on a 127.0.0.x port with
# a temporary data dir and an API key, and runs test/*.test.ts with Node's test runner against it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(cd ../.. && pwd)"

if [ ! -x node_modules/.bin/tsc ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

bash scripts/generate.sh --check
node_modules/.bin/tsc --noEmit -p .
rm -rf build
node_modules/.bin/tsc -p .

bin="${RUNBOX_BIN:-$repo/target/debug/runbox}"
if [ ! -x "$bin" ]; then
    (cd "$repo" && cargo build -p runbox)
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/runbox-ts-test.XXXXXX")"
chmod 755 "$work"  # the sandboxes' unprivileged users must reach the workspaces under it
data="$work/data"
mkdir -m 755 "$data"
key="ts-client-test-key-$RANDOM$RANDOM$RANDOM"
printf '[[api_keys]]\nname = "ts"\nkey = "%s"\n' "$key" >"$work/runbox.toml"
out="$work/server.out"
env -u RUNBOX_API_KEY -u RUNBOX_URL -u RUNBOX_CONFIG "$bin" serve --config "$work/runbox.toml" \
    --listen "127.0.0.$((RANDOM % 240 + 2)):0" --data-dir "$data" >"$out" 2>"$work/server.err" &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

url=""
for _ in $(seq 1 300); do
    url="$(sed -n 's/^runbox listening on //p' "$out" | head -1)"
    [ -n "$url" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$url" ]; then
    echo "runbox serve did not start:" >&2
    tail -20 "$work/server.err" >&2
    exit 1
fi

# Zero-config: the client finds the server and the key in the environment.
RUNBOX_URL="$url" RUNBOX_API_KEY="$key" node --experimental-websocket --no-warnings --test build/test/
