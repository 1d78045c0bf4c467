#!/usr/bin/env bash
# StartInstance commit throughput with and without group commit, every commit synced.
#   bench/start-commit.sh [BUILD_DIR] [CONCURRENCY] [TOTAL]
set -euo pipefail
build=${1:-build}
conc=${2:-64}
total=${3:-20000}
bin=$build/sidecar/taskhubd
load=$build/bench/th-start-load
pid="" dir=""
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid"; [ -n "$dir" ] && rm -rf "$dir"' EXIT
for mode in on off; do
  dir=$(mktemp -d)
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  "$bin" --listen 127.0.0.1:0 --data-dir "$dir/db" --group-commit "$mode" --ops-listen off --log-level warn --ready-fd 3 3>"$fifo" &
  pid=$!
  read -r -t 30 port <"$fifo"
  rm -f "$fifo"
  "$load" "127.0.0.1:$port" "$conc" "$total" "start_instance_group_commit_$mode"
  kill -TERM "$pid"
  wait "$pid"
  pid=""
  rm -rf "$dir"
done
