#!/usr/bin/env bash
# The standard benchmark set: starts taskhubd from BUILD_DIR on a free port with a fresh data directory (every
# commit synced), drives it with th-bench (the C SDK: worker in a child process, client in th-bench) and prints
# one RESULT line per scenario.
#   bench/run.sh [BUILD_DIR] [smoke|quick|full] [rocksdb|postgres]     (defaults: build, quick, rocksdb)
# With postgres the script starts a PostgreSQL server of its own (tests/support/pg.sh, on this machine's cores
# too) and gives each taskhubd a database of its own; RESULT lines end with store=postgres.
set -euo pipefail
build=${1:-build}
size=${2:-quick}
store=${3:-rocksdb}
here=$(cd "$(dirname "$0")" && pwd)
case "$size" in
  smoke) hc=20; fans="100"; lat=5; tim=10; ev=10; large=300; idle=300; sig=200; ents=20; calls=20 ;;
  quick) hc=2000; fans="100 1000 10000"; lat=200; tim=1000; ev=1000; large=20000; idle=20000; sig=20000; ents=1000; calls=2000 ;;
  full) hc=20000; fans="100 1000 10000"; lat=1000; tim=10000; ev=10000; large=1000000; idle=100000; sig=100000; ents=1000; calls=20000 ;;
  *) echo "usage: bench/run.sh [BUILD_DIR] [smoke|quick|full]" >&2; exit 2 ;;
esac
bin="$build/sidecar/taskhubd"
bench="$build/bench/th-bench"
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; [ "$store" = postgres ] && bash "$here/../tests/support/pg.sh" stop "$work/pg"; rm -rf "$work"' EXIT
case "$store" in
  rocksdb) ;;
  postgres) chmod 755 "$work" && bash "$here/../tests/support/pg.sh" start "$work/pg" >/dev/null ;; # initdb runs as postgres when root
  *) echo "usage: bench/run.sh [BUILD_DIR] [smoke|quick|full] [rocksdb|postgres]" >&2; exit 2 ;;
esac

start() { # start DATA_DIR: sets pid and port; fails if taskhubd does not come up within 60 s
  local fifo="$work/ready.$RANDOM"
  mkfifo "$fifo"
  local where=(--data-dir "$1")
  if [ "$store" = postgres ]; then
    where=(--store "$(bash "$here/../tests/support/pg.sh" createdb "$work/pg" "th_$(basename "$1")")")
  fi
  "$bin" --listen 127.0.0.1:0 "${where[@]}" --ops-listen off --log-level warn --ready-fd 3 3>"$fifo" \
    2>>"$work/taskhubd.log" &
  pid=$!
  if ! read -r -t 60 port <"$fifo"; then
    echo "taskhubd did not start; its log:" >&2
    cat "$work/taskhubd.log" >&2
    exit 1
  fi
  rm -f "$fifo"
}
stop() {
  kill -TERM "$pid"
  wait "$pid"
  pid=""
}
run() { # run SCENARIO COUNT [th-bench options]
  "$bench" "127.0.0.1:$port" "$1" "$2" "${@:3}" --sidecar-pid "$pid" | sed "/^RESULT /s/\$/ store=$store/"
}

start "$work/main"
run hello_cities5 "$hc"
for n in $fans; do run fanout "$n"; done
run latency "$lat"
run timers "$tim"
run events "$ev"
stop

# Entities on a fresh store: signals spread over counters, run by th-bench's own entity worker.
start "$work/entities"
run entity_signals "$sig" --entities "$ents"
# Orchestrations calling entities (the C SDK's worker runs both): one call each, awaited.
run entity_calls "$calls" --entities "$ents"
stop

start "$work/large"
run large_state "$large"
stop

start "$work/idle"
run idle "$idle"
stop
# Restart to serving with every waiting instance recovered.
t0=$(date +%s%N)
start "$work/idle"
t1=$(date +%s%N)
rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
ms=$(( (t1 - t0) / 1000000 ))
echo "RESULT scenario=restart_to_serving throughput=0 p50_ms=$ms p95_ms=$ms p99_ms=$ms sidecar_cpu_s=0 sidecar_rss_mb=$rss instances=$idle store=$store"
stop
