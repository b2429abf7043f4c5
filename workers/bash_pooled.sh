# Prelude of a warm Bash sandbox (run with `bash -c`): waits for the go byte on fd 3, then runs the request's
# entry file with its arguments and environment (NUL-separated files written by the engine).
read -r -n 1 -u 3 _
exec 3<&-
while IFS= read -r -d '' __runbox_kv; do export "$__runbox_kv"; done < /workspace/.runbox/env
mapfile -d '' -t __runbox_args < /workspace/.runbox/args
exec /bin/bash "${__runbox_args[@]}"
