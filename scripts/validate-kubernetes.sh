#!/usr/bin/env bash
# Validates every manifest in deploy/kubernetes/ offline against the Kubernetes API schemas of a current release
# (strict: unknown fields are errors), with kubernetes-validate from a virtualenv under target/tools (installed by
# scripts/install-cluster-tools.sh); then checks that runbox itself accepts the ConfigMap's runbox.toml, as the pod
# named runbox-0 would load it. Nothing is sent to a cluster.
#
# Usage: scripts/validate-kubernetes.sh [KUBERNETES_VERSION]   (default 1.37.0)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${1:-1.37.0}"
bash scripts/install-cluster-tools.sh kubernetes-validate
target/tools/kubernetes-validate/bin/kubernetes-validate --strict -k "$VERSION" deploy/kubernetes/*.yaml

config="target/tools/runbox-configmap.toml"
target/tools/kubernetes-validate/bin/python - "$config" <<'PY'
import sys, yaml
doc = yaml.safe_load(open("deploy/kubernetes/configmap.yaml"))
open(sys.argv[1], "w").write(doc["data"]["runbox.toml"])
PY
RUNBOX_NODE_ID=runbox-0 RUNBOX_API_KEY=validate-kubernetes-0123456789 \
    cargo run -q -p runbox -- config --config "$config" >/dev/null
echo "deploy/kubernetes: every manifest is valid for Kubernetes $VERSION, and runbox accepts the ConfigMap's runbox.toml"
