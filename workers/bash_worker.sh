# runbox's Bash session worker: one persistent shell inside the sandbox. Cells arrive on fd 3 as
# `EXEC <id> <nbytes>` plus the code; each runs with `eval` in this shell, so variables, functions, aliases and the
# working directory persist. Replies go to fd 4 as JSON lines. An interrupt stops the running command; a loop the
# shell itself spins in cannot be interrupted and is killed after the grace period.
__runbox_interrupted=0
trap '__runbox_interrupted=1' INT
__runbox_count=0
printf '{"event":"ready","language":"bash","version":"%s"}\n' "${BASH_VERSION%%(*}" >&4
while IFS=' ' read -r __runbox_word __runbox_id __runbox_size <&3; do
  [ "$__runbox_word" = EXEC ] || continue
  # SIGINT is ignored while the cell is read, so that an interrupt cannot cut it short (the engine repeats it).
  trap '' INT
  __runbox_code=$(head -c "$__runbox_size" <&3; printf x)
  trap '__runbox_interrupted=1' INT
  __runbox_code=${__runbox_code%x}
  __runbox_count=$((__runbox_count + 1))
  __runbox_interrupted=0
  eval "$__runbox_code" 3<&- 4>&-
  __runbox_status=$?
  if [ "$__runbox_interrupted" = 1 ]; then
    printf '{"event":"done","id":%s,"execution_count":%s,"status":"interrupted","exit_code":%s}\n' \
      "$__runbox_id" "$__runbox_count" "$__runbox_status" >&4
  elif [ "$__runbox_status" = 0 ]; then
    printf '{"event":"done","id":%s,"execution_count":%s,"status":"ok","exit_code":0}\n' \
      "$__runbox_id" "$__runbox_count" >&4
  else
    printf '{"event":"done","id":%s,"execution_count":%s,"status":"error","exit_code":%s,"error":{"name":"ExitStatus","value":"%s","traceback":""}}\n' \
      "$__runbox_id" "$__runbox_count" "$__runbox_status" "$__runbox_status" >&4
  fi
done
