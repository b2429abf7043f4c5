# Prelude of a warm sandbox for any language (run with `bash -c`): waits for the go byte on fd 3, then replaces
# itself with the language's run command, whose argv and environment the engine wrote as NUL-separated lists.
read -r -n 1 -u 3 _
exec 3<&-
while IFS= read -r -d '' __runbox_kv; do export "$__runbox_kv"; done < /workspace/.runbox/env
mapfile -d '' -t __runbox_argv < /workspace/.runbox/argv
exec "${__runbox_argv[@]}"
