#!/usr/bin/env bash
# Dashboard read figures at scale: starts taskhubd from BUILD_DIR (ops port on a free port, fresh data directory),
# runs one orchestration fanning out FANOUT activities (th-bench fanout: a history of about 2 x FANOUT events),
# starts INSTANCES more instances (th-start-load, left PENDING: no worker takes HelloCities), then times the
# dashboard's API with bench/dashboard_reads.py, which prints RESULT lines (client-side p50/p95/p99 and the server's
# own time for each request).
# With DASHBOARD_VENV set to a virtualenv holding Selenium (the dashboard tests' build-test/dashboard-venv), it then
# times the page itself in headless Chromium (bench/dashboard_page.py).
#   bench/dashboard.sh [BUILD_DIR] [INSTANCES] [FANOUT]      (defaults: build 1000000 5000)
set -euo pipefail
build=${1:-build}
instances=${2:-1000000}
fanout=${3:-5000}
here=$(cd "$(dirname "$0")" && pwd)
bin="$build/sidecar/taskhubd"
work=$(mktemp -d)
# shellcheck source=bench/start_taskhubd.sh
. "$here/start_taskhubd.sh"
start_taskhubd "$bin" "$work/data"
"$build/bench/th-bench" "127.0.0.1:$port" fanout "$fanout" --sidecar-pid "$pid" | sed 's/^RESULT /SETUP /'
t0=$(date +%s)
"$build/bench/th-start-load" "127.0.0.1:$port" 64 "$instances" dashboard_load | sed 's/^RESULT /SETUP /'
echo "SETUP loaded=$instances seconds=$(( $(date +%s) - t0 ))"
python3 "$here/dashboard_reads.py" "127.0.0.1:$ops_port" "$instances" | tee "$work/reads"
if [ -n "${DASHBOARD_VENV:-}" ]; then
  big=$(sed -n 's/^BIG id=\(.*\) events=\([0-9]*\)$/\1 \2/p' "$work/reads")
  # shellcheck disable=SC2086
  SE_OFFLINE=true SE_AVOID_STATS=true "$DASHBOARD_VENV/bin/python" "$here/dashboard_page.py" "127.0.0.1:$ops_port" \
    "$instances" $big
fi
