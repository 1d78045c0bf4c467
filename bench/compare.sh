#!/usr/bin/env bash
# Side by side: taskhubd against durabletask-go's own sidecar, driven by the same clients.
#
#   bench/compare.sh [BUILD_DIR] [COUNT] [FANOUT]
#
# BUILD_DIR (default: build) holds a built taskhubd (BUILD_DIR/sidecar/taskhubd; build it Release for figures
# worth quoting). The script installs what it needs under BUILD_DIR/bench-compare/:
#   bin/durabletask-go  the reference sidecar, `go install`ed from the durabletask-go module at the version
#                       pinned in bench/go/go.mod (its `tool` line; none of its code is in this repository)
#   bin/dtload          bench/go: the Go SDK of that module as worker and client
#   venv/               Python with tests/interop/python/requirements.txt (durabletask==1.12.0), for bench/py
# then, in one run, for each client (go, python) and each sidecar (taskhubd with a fresh data dir, durabletask-go
# with a fresh SQLite file database), starts the sidecar on a free 127.0.0.1 port (port 0: taskhubd reports it on
# --ready-fd, durabletask-go prints it), runs the scenarios hello_cities5 (COUNT orchestrations of 5 sequential
# activities, default 200) and fanout (one orchestration of FANOUT parallel activities, default 500), prints each
# RESULT line with client= and sidecar= appended, stops the sidecar (SIGTERM, wait), and ends with one RATIO line
# per scenario and client:
#   RATIO scenario=<s> client=<c> taskhubd_over_durabletask_go=<throughput on taskhubd / on durabletask-go>
# (for fanout the throughput is activities/s, so the ratio is also durabletask-go's seconds / taskhubd's).
#
# The defaults take about 1.5 minutes on this 2-core machine, nearly all of it spent on durabletask-go (the
# taskhubd runs take seconds). Larger runs:
#   bench/compare.sh build 1000 1000      # measured: about 4.5 minutes
#   bench/compare.sh build 5000 10000     # not measured: durabletask-go needs ~10 min per client for the
#                                         # orchestrations alone, and its 10,000-activity fan-out much longer
# durabletask-go's numbers vary by up to 2x between runs (its workers poll the database with a randomised
# back-off); repeat a run before quoting a ratio.
# Per-run JSON and the sidecars' logs are kept in BUILD_DIR/bench-compare/run/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$(realpath -m "${1:-$REPO/build}")
COUNT=${2:-200}
FANOUT=${3:-500}
TASKHUBD=$BUILD/sidecar/taskhubd
WORK=$BUILD/bench-compare
RUN=$WORK/run
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-1800}  # seconds one client run may take, both scenarios together

die() { echo "compare.sh: $*" >&2; exit 1; }
[[ -x $TASKHUBD ]] || die "no taskhubd at $TASKHUBD (build it first: cmake --build $BUILD --target taskhubd)"
command -v go >/dev/null || die "needs the Go toolchain"
command -v python3 >/dev/null || die "needs python3"
START=$(date +%s)

# ---- install ------------------------------------------------------------------------------------------------
mkdir -p "$WORK/bin"
rm -rf "$RUN"
mkdir -p "$RUN"
echo "compare.sh: installing durabletask-go sidecar and the Go load program into $WORK/bin" >&2
(cd "$HERE/go" && GOBIN="$WORK/bin" go install -buildvcs=false github.com/microsoft/durabletask-go \
	&& go build -buildvcs=false -o "$WORK/bin/dtload" .)
PEER_VERSION=$(cd "$HERE/go" && go list -m -f '{{.Version}}' github.com/microsoft/durabletask-go)
REQ=$REPO/tests/interop/python/requirements.txt
if ! [[ -x $WORK/venv/bin/python ]] || ! cmp -s "$REQ" "$WORK/venv/requirements.txt"; then
	echo "compare.sh: creating $WORK/venv" >&2
	rm -rf "$WORK/venv"
	python3 -m venv "$WORK/venv"
	"$WORK/venv/bin/pip" install -q --disable-pip-version-check -r "$REQ"
	cp "$REQ" "$WORK/venv/requirements.txt"
fi
PY=$WORK/venv/bin/python

# ---- sidecars -----------------------------------------------------------------------------------------------
SIDECAR_PID=""
SIDECAR_PORT=""
cleanup() { [[ -n $SIDECAR_PID ]] && kill -KILL "$SIDECAR_PID" 2>/dev/null || true; }
trap cleanup EXIT

THD_EXTRA=()
if "$TASKHUBD" --help 2>&1 | grep -q -- '--ops-listen'; then THD_EXTRA=(--ops-listen off); fi

# start_taskhubd NAME: fresh data dir, port 0, the bound port read from --ready-fd (no polling).
start_taskhubd() {
	local dir=$RUN/$1.data fifo=$RUN/$1.ready
	rm -rf "$dir" "$fifo"
	mkfifo "$fifo"
	"$TASKHUBD" --listen 127.0.0.1:0 --ready-fd 3 --data-dir "$dir" "${THD_EXTRA[@]}" 3>"$fifo" 2>"$RUN/$1.log" &
	SIDECAR_PID=$!
	SIDECAR_PORT=""
	read -r -t 30 SIDECAR_PORT <"$fifo" || true
	rm -f "$fifo"
	[[ $SIDECAR_PORT =~ ^[0-9]+$ ]] || { tail -20 "$RUN/$1.log" >&2; die "taskhubd did not report its port"; }
}

# WAIT_LISTEN OUTFILE PID: durabletask-go prints "server listening at 127.0.0.1:PORT" once it has bound its port
# (given -port 0, the OS picks a free one: no race with other programs). Waits for that line (30 s deadline,
# fails at once if PID dies), checks that the port accepts a connection, and prints PORT.
WAIT_LISTEN='
import os, re, socket, sys, time
out, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while True:
    with open(out) as f:
        m = re.search(r"listening at 127\.0\.0\.1:(\d+)", f.read())
    if m:
        break
    os.kill(pid, 0)  # raises once the sidecar has died
    if time.monotonic() > deadline:
        sys.exit("durabletask-go printed no listening address within 30 s")
    time.sleep(0.02)
socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=5).close()
print(m.group(1))
'

# start_dtgo NAME: fresh SQLite file database, port 0, the bound port read from its first output line.
start_dtgo() {
	local db=$RUN/$1.sqlite
	rm -f "$db" "$db"-*
	"$WORK/bin/durabletask-go" -host 127.0.0.1 -port 0 -db "$db" >"$RUN/$1.out" 2>"$RUN/$1.log" &
	SIDECAR_PID=$!
	SIDECAR_PORT=$("$PY" -c "$WAIT_LISTEN" "$RUN/$1.out" "$SIDECAR_PID") \
		|| { tail -20 "$RUN/$1.log" >&2; die "durabletask-go did not start"; }
}

# stop_sidecar: SIGTERM, then wait for it to exit, with a 30 s deadline after which it gets SIGKILL.
stop_sidecar() {
	local pid=$SIDECAR_PID rc=0 t0=$SECONDS
	kill -TERM "$pid"
	if ! timeout 30 tail --pid="$pid" -s 0.05 -f /dev/null; then
		echo "compare.sh: sidecar $pid still running 30 s after SIGTERM: SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" || rc=$?
	SIDECAR_PID=""
	echo "compare.sh: sidecar $pid exited with status $rc after SIGTERM ($((SECONDS - t0)) s)" >&2
}

# ---- runs ---------------------------------------------------------------------------------------------------
declare -A TPUT
run_one() { # CLIENT SIDECAR
	local c=$1 s=$2 name=$1-$2 out rc=0
	if [[ $s == taskhubd ]]; then start_taskhubd "$name"; else start_dtgo "$name"; fi
	echo "compare.sh: client=$c sidecar=$s port=$SIDECAR_PORT pid=$SIDECAR_PID" >&2
	if [[ $c == go ]]; then
		out=$(timeout "$CLIENT_TIMEOUT" "$WORK/bin/dtload" -addr "127.0.0.1:$SIDECAR_PORT" -scenario all \
			-count "$COUNT" -fanout "$FANOUT" -sidecar-pid "$SIDECAR_PID" -json "$RUN/$name.json" \
			2>"$RUN/$name.client.log") || rc=$?
	else
		out=$(timeout "$CLIENT_TIMEOUT" "$PY" "$HERE/py/hello_cities.py" --addr "127.0.0.1:$SIDECAR_PORT" \
			--scenario all --count "$COUNT" --fanout "$FANOUT" --sidecar-pid "$SIDECAR_PID" \
			--json "$RUN/$name.json" 2>"$RUN/$name.client.log") || rc=$?
	fi
	stop_sidecar
	if ((rc != 0)); then
		echo "$out"
		tail -20 "$RUN/$name.client.log" >&2
		die "client $c against $s failed (status $rc); logs in $RUN"
	fi
	local line
	while read -r line; do
		[[ $line == RESULT* ]] || continue
		echo "$line client=$c sidecar=$s"
		local sc=${line#*scenario=}; sc=${sc%% *}
		local tp=${line#*throughput=}; tp=${tp%% *}
		TPUT[$sc/$c/$s]=$tp
	done <<<"$out"
}

echo "compare.sh: COUNT=$COUNT FANOUT=$FANOUT taskhubd=$TASKHUBD durabletask-go=$PEER_VERSION python=durabletask==$(
	"$PY" -c 'import importlib.metadata as m; print(m.version("durabletask"))')" >&2
for c in go python; do
	for s in taskhubd durabletask-go; do
		run_one "$c" "$s"
	done
done
for sc in hello_cities5 fanout; do
	for c in go python; do
		a=${TPUT[$sc/$c/taskhubd]:-} b=${TPUT[$sc/$c/durabletask-go]:-}
		[[ -n $a && -n $b ]] || die "missing result for scenario=$sc client=$c"
		echo "RATIO scenario=$sc client=$c taskhubd_over_durabletask_go=$(awk -v a="$a" -v b="$b" \
			'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }')"
	done
done
echo "compare.sh: done in $(($(date +%s) - START)) s; JSON and logs in $RUN" >&2
