#!/usr/bin/env bash
# Installs the language runtimes that runbox's default catalogue (languages/*.toml)
# points at, on Debian 12 (bookworm), as root. Idempotent: a second run with
# everything present only checks and exits.
#
# Every path checked here is the absolute path a languages/*.toml file uses, so
# "present" means "present where the sandbox will look for it". Everything lands
# under /usr (including TypeScript, which goes to /usr/local), because the sandbox
# bind-mounts /usr read-only and sees nothing under /root or $HOME.
#
# Usage: scripts/install-runtimes.sh [--verify-only]
#   --verify-only   install nothing; print every runtime's version, fail if one is missing
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# Global npm packages go here, whatever npm's configured prefix is, so the path
# baked into languages/typescript.toml is always right.
NPM_PREFIX=/usr/local
TS_PACKAGES=("typescript@5" "@types/node@20")

# "absolute path the catalogue uses" -> "Debian package that provides it".
BINARIES=(
  "/usr/bin/python3 python3"
  "/usr/bin/node nodejs"
  "/usr/bin/npm npm"
  "/bin/bash bash"
  "/usr/bin/gcc gcc"
  "/usr/bin/g++ g++"
  "/usr/bin/javac default-jdk-headless"
  "/usr/bin/java default-jdk-headless"
  "/usr/bin/go golang-go"
  "/usr/bin/rustc rustc"
  "/usr/bin/ruby ruby"
  "/usr/bin/php php-cli"
  "/usr/bin/Rscript r-base-core"
  "/usr/bin/perl perl"
  "/usr/bin/lua5.4 lua5.4"
  "/usr/bin/sqlite3 sqlite3"
)

# Packages with no binary of their own to check (Python libraries for later issues).
LIBRARY_PACKAGES=(python3-numpy python3-pandas python3-matplotlib)

# The files whose presence means the TypeScript toolchain is installed.
TS_FILES=(
  "$NPM_PREFIX/bin/tsc"
  "$NPM_PREFIX/lib/node_modules/typescript/package.json"
  "$NPM_PREFIX/lib/node_modules/@types/node/package.json"
)

log() { printf 'install-runtimes: %s\n' "$*" >&2; }

pkg_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

# Runs one version command and prints its first non-empty output line.
# Sets VERIFY_FAILED=1 if the command fails.
VERIFY_FAILED=0
check() {
  local name="$1" out
  shift
  if out=$("$@" 2>&1); then
    printf '  %-12s %s\n' "$name" "$(printf '%s\n' "$out" | grep -m1 -v '^[[:space:]]*$' || true)"
  else
    printf '  %-12s FAILED: %s\n' "$name" "$(printf '%s\n' "$out" | head -n1)"
    VERIFY_FAILED=1
  fi
}

# Prints every runtime's version; returns non-zero if any of them fails.
verify() {
  VERIFY_FAILED=0
  check python3 /usr/bin/python3 --version
  check "python libs" /usr/bin/python3 -c \
    'import numpy, pandas, matplotlib; print("numpy", numpy.__version__, "pandas", pandas.__version__, "matplotlib", matplotlib.__version__)'
  check node /usr/bin/node --version
  check tsc "$NPM_PREFIX/bin/tsc" --version
  check bash /bin/bash --version
  check gcc /usr/bin/gcc --version
  check g++ /usr/bin/g++ --version
  check javac /usr/bin/javac -version
  check java /usr/bin/java -version
  check go /usr/bin/go version
  check rustc /usr/bin/rustc --version
  check ruby /usr/bin/ruby --version
  check php /usr/bin/php --version
  check Rscript /usr/bin/Rscript --version
  check perl /usr/bin/perl -v
  check lua5.4 /usr/bin/lua5.4 -v
  check sqlite3 /usr/bin/sqlite3 --version
  return "$VERIFY_FAILED"
}

if [ "${1:-}" = "--verify-only" ]; then
  verify
  exit $?
fi

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it uses apt-get and writes to /usr/local)"
  exit 1
fi

# Work out what is missing.
missing=()
for entry in "${BINARIES[@]}"; do
  path="${entry%% *}" pkg="${entry#* }"
  if [ ! -x "$path" ]; then
    # Node from another source (e.g. NodeSource) ships npm itself: only ask
    # Debian for npm when node is also Debian's.
    if [ "$pkg" = npm ] && [ -x /usr/bin/node ] && ! pkg_installed nodejs; then
      log "warning: /usr/bin/npm missing but /usr/bin/node is not Debian's nodejs; not installing Debian npm"
      continue
    fi
    missing+=("$pkg")
  fi
done
for pkg in "${LIBRARY_PACKAGES[@]}"; do
  pkg_installed "$pkg" || missing+=("$pkg")
done
ts_missing=0
for f in "${TS_FILES[@]}"; do
  [ -e "$f" ] || ts_missing=1
done

if [ "${#missing[@]}" -eq 0 ] && [ "$ts_missing" -eq 0 ]; then
  log "all runtimes already installed"
  exit 0
fi

if [ "${#missing[@]}" -gt 0 ]; then
  # De-duplicate (java and javac share a package) while keeping order.
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
  log "installing with apt-get: ${missing[*]}"
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ "$ts_missing" -eq 1 ]; then
  if [ ! -x /usr/bin/npm ]; then
    log "npm is missing, cannot install TypeScript"
    exit 1
  fi
  log "installing ${TS_PACKAGES[*]} into $NPM_PREFIX with npm"
  npm install --global --prefix "$NPM_PREFIX" --no-fund --no-audit --no-update-notifier \
    "${TS_PACKAGES[@]}"
fi

log "installed; checking every runtime:"
verify
