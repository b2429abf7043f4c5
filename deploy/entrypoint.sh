#!/bin/sh
# The image's entrypoint: prepares what a container hides from runbox, then becomes runbox. Needs the pod's
# securityContext from deploy/kubernetes/statefulset.yaml (root with CAP_SYS_ADMIN, AppArmor unconfined). Each
# step that cannot be done is left to runbox, which then refuses to run code without its protections (readiness
# 503 with the reason; `runbox doctor` names it) rather than running it unprotected.
set -eu

if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    # cgroup v2. Runtimes mount the container's cgroup read-only unless privileged; runbox makes one child cgroup
    # per sandbox under it, so it must be writable (the mount shows only this container's own subtree).
    if grep -qE '^[^ ]+ [^ ]+ [^ ]+ [^ ]+ /sys/fs/cgroup [^ ]*\bro\b' /proc/self/mountinfo; then
        mount -o remount,rw /sys/fs/cgroup || echo "runbox-entrypoint: cannot make /sys/fs/cgroup writable" >&2
    fi
    # A cgroup that holds processes cannot hand controllers to children ("no internal processes"): the server
    # moves to a leaf of its own, and the container's cgroup becomes the parent of runbox's.
    if mkdir -p /sys/fs/cgroup/runbox-server 2>/dev/null; then
        echo $$ > /sys/fs/cgroup/runbox-server/cgroup.procs || true
    fi
fi

# A sandbox mounts a fresh /proc inside its own user namespace; the kernel allows that only when a procfs is fully
# visible in the mount namespace, and runtimes mask parts of the container's /proc. A procfs of our own, unmasked,
# seen by nothing but the server (sandboxes get their own root), satisfies that.
mkdir -p /run/runbox/proc
mount -t proc -o nosuid,nodev,noexec proc /run/runbox/proc 2>/dev/null \
    || echo "runbox-entrypoint: cannot mount a procfs of its own; sandboxes may fail to mount /proc" >&2

exec /usr/local/bin/runbox "$@"
