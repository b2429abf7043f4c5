#!/usr/bin/env bash
# Installs PostgreSQL (Debian 12's `postgresql` package) for the tests of async jobs on a shared store
# (crates/runbox/tests/it/cluster/jobs_on_a_shared_store.rs). The tests start their own throwaway cluster with initdb and
# pg_ctl as the `postgres` user; they never use the system service this package may start. Idempotent; run as
# root (or with sudo) on a fresh machine.
set -euo pipefail

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
        && compgen -G '/usr/lib/postgresql/*/bin/psql' >/dev/null \
        && id postgres >/dev/null 2>&1
}

if have_postgres; then
    echo "PostgreSQL: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')(already installed)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-postgres.sh: PostgreSQL is missing and installing it needs root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
have_postgres || { echo "install-postgres.sh: postgresql installed but initdb/psql not found" >&2; exit 1; }
echo "PostgreSQL: installed $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
