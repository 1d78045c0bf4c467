#!/usr/bin/env bash
# taskhubd's memory under issue 15's loads (th-limits-bench): workers that never read, and one instance flooded with
# events, each with the default limits and with the limits off, every commit synced. One RESULT line per run, with
# the taskhubd flags appended (flags=...).
#   bench/limits.sh [BUILD_DIR] [smoke|full]      (defaults: build, full)
# full: 2,000 streams that never read (their process is stopped: SIGSTOP) while 60,000 orchestrations with 10 KB
# inputs are started, and 200,000 RaiseEvent calls to one instance. Figures: docs/performance.md#memory-under-hostile-load.
set -euo pipefail
build=${1:-build}
size=${2:-full}
case "$size" in
  smoke) streams=20; instances=200; input=10000; events=2000 ;;
  full) streams=2000; instances=60000; input=10000; events=200000 ;;
  *) echo "usage: bench/limits.sh [BUILD_DIR] [smoke|full]" >&2; exit 2 ;;
esac
bin="$build/sidecar/taskhubd"
bench="$build/bench/th-limits-bench"
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
# Each stream is a connection: two descriptors here and one in taskhubd.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

run() { # run SCENARIO_ARGS... -- TASKHUBD_FLAGS...
  local args=() flags=()
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  flags=("$@")
  local fifo="$work/ready.$RANDOM" dir="$work/data.$RANDOM"
  mkfifo "$fifo"
  "$bin" --listen 127.0.0.1:0 --data-dir "$dir" --ops-listen off --log-level warn "${flags[@]}" --ready-fd 3 \
    3>"$fifo" 2>>"$work/taskhubd.log" &
  pid=$!
  local port
  if ! read -r -t 60 port <"$fifo"; then
    echo "taskhubd did not start; its log:" >&2
    cat "$work/taskhubd.log" >&2
    exit 1
  fi
  rm -f "$fifo"
  local f="${flags[*]:-defaults}"
  "$bench" "127.0.0.1:$port" "$pid" "${args[@]}" | sed "/^RESULT /s/\$/ flags=${f// /_}/"
  kill -TERM "$pid"
  wait "$pid"
  pid=""
  rm -rf "$dir"
}

run lazy_streams "$streams" "$instances" "$input" --
run lazy_streams "$streams" "$instances" "$input" -- --max-outbox-total 0 --stream-stall 0
run inbox_flood "$events" --
# An inbox this large must fit the hot-instance cache, or every batch of RaiseEvents reads it back from RocksDB
# (docs/operations.md#limits): the cache is raised with the limit.
run inbox_flood "$events" -- --max-inbox 1000000 --max-inbox-bytes 1G --cache-size 512M
