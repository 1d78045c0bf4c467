#!/usr/bin/env bash
# /healthz while /metrics is scraped at a large store: starts taskhubd from BUILD_DIR (ops port on a free port),
# starts INSTANCES instances into a fresh data directory (th-start-load; left PENDING: no worker takes HelloCities),
# then bench/ops_counts.py probes /healthz without pause while /metrics is scraped without pause for SECONDS, and
# prints a RESULT line (healthz p50/p99/max and how many probes took over 100 ms and over 1 s).
#   bench/ops_counts.sh [BUILD_DIR] [INSTANCES] [SECONDS]      (defaults: build 1000000 20)
# To compare two builds on the same store: DATA_DIR=dir keeps the data there (loaded only when the directory does
# not exist yet) and TASKHUBD=path runs another binary (e.g. main's), LABEL names the run in the RESULT line.
set -euo pipefail
build=${1:-build}
instances=${2:-1000000}
seconds=${3:-20}
here=$(cd "$(dirname "$0")" && pwd)
bin=${TASKHUBD:-$build/sidecar/taskhubd}
work=$(mktemp -d)
data=${DATA_DIR:-$work/data}
load=1
[ -n "${DATA_DIR:-}" ] && [ -d "$DATA_DIR" ] && load=0
# shellcheck source=bench/start_taskhubd.sh
. "$here/start_taskhubd.sh"
start_taskhubd "$bin" "$data"
if [ "$load" = 1 ]; then
  t0=$(date +%s)
  "$build/bench/th-start-load" "127.0.0.1:$port" 64 "$instances" ops_counts_load | sed 's/^RESULT /SETUP /'
  echo "SETUP loaded=$instances seconds=$(( $(date +%s) - t0 ))"
fi
python3 "$here/ops_counts.py" "127.0.0.1:$ops_port" "$instances" "$seconds" "${LABEL:-$(basename "$bin")}"
