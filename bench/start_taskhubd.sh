# Sourced by the bench scripts that time one taskhubd on free ports: start_taskhubd BIN DATA_DIR starts it with
# its ops port, sets $pid, $port (gRPC) and $ops_port, keeps its log in $work/taskhubd.log, and stops it (and
# removes $work) when the script exits. $work must be a fresh directory (mktemp -d).
start_taskhubd() {
  local bin=$1 data=$2
  pid=""
  trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
  mkfifo "$work/ready" "$work/ops"
  "$bin" --listen 127.0.0.1:0 --data-dir "$data" --ops-listen 127.0.0.1:0 --ops-ready-fd 4 --log-level warn \
    --ready-fd 3 3>"$work/ready" 4>"$work/ops" 2>>"$work/taskhubd.log" &
  pid=$!
  exec 6<"$work/ready" 5<"$work/ops" # the order taskhubd's redirections open them
  # Recovery of a large existing store may take minutes before the gRPC port is reported.
  if ! read -r -t 60 ops_port <&5 || ! read -r -t 600 port <&6; then
    echo "taskhubd did not start; its log:" >&2
    cat "$work/taskhubd.log" >&2
    exit 1
  fi
}
