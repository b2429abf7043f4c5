#!/usr/bin/env bash
# Installs what the cluster checks need, as root on Debian 12; idempotent (a second run only checks):
# - nginx, the front door the cluster test starts with a config of its own (deploy/nginx/runbox.conf). The
#   Debian package's own service is never started for it: a temporary policy-rc.d keeps apt from starting it.
# - kubernetes-validate (PyPI), in a virtualenv under target/tools/kubernetes-validate, for
#   scripts/validate-kubernetes.sh.
#
# Usage: scripts/install-cluster-tools.sh [nginx|kubernetes-validate]...   (no argument: both)
set -euo pipefail
cd "$(dirname "$0")/.."

KV_VERSION=1.37.0
VENV=target/tools/kubernetes-validate

log() { printf 'install-cluster-tools: %s\n' "$*" >&2; }

install_nginx() {
  if [ -x /usr/sbin/nginx ]; then
    log "nginx present: $(/usr/sbin/nginx -v 2>&1)"
    return
  fi
  if [ "$(id -u)" != 0 ]; then
    log "must run as root to install nginx (apt-get)"
    exit 1
  fi
  log "installing nginx with apt-get (its system service is not started)"
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends nginx
  if [ "$made_policy" = 1 ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  /usr/sbin/nginx -v
}

install_kubernetes_validate() {
  if [ -x "$VENV/bin/kubernetes-validate" ] && "$VENV/bin/pip" show kubernetes-validate 2>/dev/null | grep -qx "Version: $KV_VERSION"; then
    log "kubernetes-validate $KV_VERSION present in $VENV"
    return
  fi
  log "installing kubernetes-validate $KV_VERSION into $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(nginx kubernetes-validate)
for t in "${targets[@]}"; do
  case "$t" in
    nginx) install_nginx ;;
    kubernetes-validate) install_kubernetes_validate ;;
    *) log "unknown tool $t"; exit 2 ;;
  esac
done
