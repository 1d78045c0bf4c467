#!/usr/bin/env bash
# Side by side on one PostgreSQL server: taskhubd with one replica, taskhubd with three replicas on one database,
# durabletask-go's own PostgreSQL backend, and taskhubd on RocksDB as the baseline, driven by the same client.
#
#   bench/compare-pg.sh [BUILD_DIR] [COUNT] [LATENCY_RUNS]
#
# BUILD_DIR (default: build) holds a built taskhubd and th-bench (BUILD_DIR/sidecar/taskhubd,
# BUILD_DIR/bench/th-bench; build it Release for figures worth quoting). The script builds bench/go-pg
# (durabletask-go's sidecar gRPC API over its backend/postgres, the module imported at the version pinned in
# bench/go-pg/go.mod) into BUILD_DIR/bench-compare-pg/bin/dtgo-pg, starts ONE PostgreSQL server
# (tests/support/pg.sh, on this machine's cores too, every commit synced) and then, in one run, for each of
#   taskhubd store=rocksdb replicas=1       a fresh data directory
#   taskhubd store=postgres replicas=1      database th_pg1_<round>
#   taskhubd store=postgres replicas=3      database th_pg3_<round>: --replica-id r1, r2, r3, each on its own port
#   durabletask-go store=postgres           database dtgo_pg_<round>
# starts the sidecar(s) on free 127.0.0.1 ports, runs th-bench (the C SDK: worker in a child process, client in
# th-bench) twice: hello_cities5 (COUNT orchestrations of 5 sequential activities, default 2000) and latency
# (LATENCY_RUNS HelloCities5 one at a time, start to completion as the client sees it, default 50), and stops
# them (SIGTERM). Each RESULT line is th-bench's with these appended:
#   store=rocksdb|postgres replicas=<started> serving=<replicas that serve gRPC> sidecar=taskhubd|durabletask-go
#   db_cpu_s=<CPU of the PostgreSQL server over the run: postmaster, its backends and helpers> round=<n>
# sidecar_cpu_s and sidecar_rss_mb are summed over the replicas. The run ends with RATIO lines per round, of
# throughput for hello_cities5 and of 1/p50 for latency (how many times shorter the median run is), so that
# above 1 the first named is better:
#   RATIO scenario=<s> round=<n> taskhubd_pg1_over_durabletask_go_pg=<x>
#   RATIO scenario=<s> round=<n> taskhubd_pg3_over_pg1=<x>
#   RATIO scenario=<s> round=<n> taskhubd_pg1_over_rocksdb=<x>
#
# Three replicas: r1 starts first and is waited for; r2 and r3 then get REPLICA_WAIT seconds (default 20) to
# report their port on --ready-fd. A replica still running without a port is a standby (taskhubd before replicas
# shared partitions gave one replica every partition and kept the others waiting, without serving gRPC): th-bench
# then gets the replicas that serve (serving=1), and the three-replica figure is the one-replica figure again.
# With replicas that share the partitions all three serve (serving=3): th-bench runs one worker per replica,
# starts instances round-robin through them, waits for each through the replica that started it, and measures
# only after --settle (below), once the partitions have spread over the replicas that have workers.
#
# Environment: ROUNDS (default 1) repeats the four configurations in the same order, each round on fresh
# databases; REPLICA_WAIT (20); REPLICA_SETTLE (default 3: th-bench --settle for three replicas, the seconds
# between its warm-up, workers connected to every replica, and the measurement, for partitions to move to the
# replicas that now have workers; about 1 s here); DTGO_MAX_CONNS and DTGO_PARALLELISM
# (default 1 and 1: durabletask-go as shipped, postgres.NewPostgresOptions' one pooled connection and one work
# item at a time per worker; 8 and 8 measured about 25 % more HelloCities5 throughput, the same latency);
# REPLICA_CPU (default unset: no limit) gives every sidecar process (each taskhubd replica, durabletask-go) a CPU
# budget of its own, in cores ("0.25"), as a Kubernetes pod's resources.limits.cpu does: each runs in a cgroup of
# its own with that CFS quota (cgroup v2 cpu.max or v1 cpu.cfs_quota_us; root only), and RESULT lines carry
# replica_cpu=. This is how "three replicas faster than one" shows on a machine whose two cores are shared by
# everything in the run: without a limit, adding replicas adds no CPU; with one, each replica brings its own;
# CLIENT_TIMEOUT (seconds per th-bench run, default 900); GO_OFFLINE=1 builds dtgo-pg with GOPROXY=off and, if
# the module cache lacks a module (or there is no Go toolchain), leaves durabletask-go out instead of failing
# (the CTest smoke test sets it).
#
# The defaults take about 1.5 minutes on this 2-core machine, nearly all of it on durabletask-go (some 35-50
# HelloCities5 per second, one at a time in 0.4-0.5 s), 20 s more where replicas wait as standbys. Larger runs:
#   ROUNDS=3 bench/compare-pg.sh build            # three rounds, alternating the configurations: 4.5-5 minutes
#   bench/compare-pg.sh build 5000 200            # about 4.5 minutes (estimated), nearly all on durabletask-go
# The host's speed drifts (up to 30 % here): only ratios within one round are comparable; durabletask-go's own
# numbers also move by tens of percent between runs (its workers and WaitForInstanceCompletion poll with
# randomised back-offs). Repeat a run before quoting a ratio. Logs are kept in BUILD_DIR/bench-compare-pg/run/
# (durabletask-go logs every work item at DEBUG, as its own main does: some 6 KB per orchestration).
# durabletask-go v0.6.0's PostgreSQL backend cannot run fan-out: an orchestrator turn that schedules two or more
# activities fails its commit (the NewTasks insert numbers its parameters three per row for two values per row:
# SQLSTATE 42P18) and the work item is retried again and again; HelloCities5 schedules one activity at a time,
# so only it is compared here.
set -Eeuo pipefail
trap 'echo "compare-pg.sh: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$(realpath -m "${1:-$REPO/build}")
COUNT=${2:-2000}
LAT=${3:-50}
ROUNDS=${ROUNDS:-1}
REPLICA_WAIT=${REPLICA_WAIT:-20}
REPLICA_SETTLE=${REPLICA_SETTLE:-3}
DTGO_MAX_CONNS=${DTGO_MAX_CONNS:-1}
DTGO_PARALLELISM=${DTGO_PARALLELISM:-1}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-900}
REPLICA_CPU=${REPLICA_CPU:-}
TASKHUBD=$BUILD/sidecar/taskhubd
THBENCH=$BUILD/bench/th-bench
WORK=$BUILD/bench-compare-pg
RUN=$WORK/run
PGSH=$REPO/tests/support/pg.sh

die() { echo "compare-pg.sh: $*" >&2; exit 1; }
note() { echo "compare-pg.sh: $*" >&2; }
[[ -x $TASKHUBD ]] || die "no taskhubd at $TASKHUBD (build it first)"
[[ -x $THBENCH ]] || die "no th-bench at $THBENCH (build it first: cmake --build $BUILD --target th-bench)"
START=$(date +%s)
CLK_TCK=$(getconf CLK_TCK)

# ---- CPU budgets (REPLICA_CPU) ---------------------------------------------------------------------------------
CAGES=() # cgroups made for the sidecars, removed at exit
CG_V2=""
CG_V1=""
if [[ -n $REPLICA_CPU ]]; then
	[[ $REPLICA_CPU =~ ^[0-9]*\.?[0-9]+$ ]] || die "REPLICA_CPU: '$REPLICA_CPU' is not a number of cores"
	if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		CG_V2=/sys/fs/cgroup
		echo +cpu >"$CG_V2/cgroup.subtree_control" 2>/dev/null || true
	elif [[ -w /sys/fs/cgroup/cpu/cgroup.procs ]]; then
		CG_V1=/sys/fs/cgroup/cpu
	else
		die "REPLICA_CPU needs a writable cgroup cpu controller (run as root)"
	fi
fi
# caged NAME: the command prefix that starts a process in a cgroup of its own with REPLICA_CPU cores (CAGE),
# or nothing without REPLICA_CPU.
CAGE=()
caged() {
	CAGE=()
	[[ -n $REPLICA_CPU ]] || return 0
	local quota dir
	quota=$(awk -v c="$REPLICA_CPU" 'BEGIN { printf "%d", c * 100000 }')
	if [[ -n $CG_V2 ]]; then
		dir=$CG_V2/thbench-$$-$1
		mkdir -p "$dir"
		echo "$quota 100000" >"$dir/cpu.max"
	else
		dir=$CG_V1/thbench-$$-$1
		mkdir -p "$dir"
		echo 100000 >"$dir/cpu.cfs_period_us"
		echo "$quota" >"$dir/cpu.cfs_quota_us"
	fi
	CAGES+=("$dir")
	# The shell joins the cgroup and becomes the sidecar (same pid), so every thread it starts is inside.
	CAGE=(bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$dir")
}

# ---- cleanup: every sidecar this script started, then the PostgreSQL server ----------------------------------
PIDS=()    # sidecars of the configuration running now
CLIENT=""  # th-bench (under timeout) while it runs
PGTMP=""   # the server's directory (under /tmp: its parents must be searchable by the postgres user as root)
cleanup() {
	local p
	[[ -n $CLIENT ]] && kill -TERM "$CLIENT" 2>/dev/null # timeout passes it on to th-bench
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		timeout 10 tail --pid="$p" -s 0.1 -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
	done
	if [[ -n $PGTMP ]]; then
		bash "$PGSH" stop "$PGTMP/pg" || true
		rm -rf "$PGTMP"
	fi
	for p in "${CAGES[@]}"; do rmdir "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- durabletask-go over PostgreSQL ---------------------------------------------------------------------------
mkdir -p "$WORK/bin"
rm -rf "$RUN"
mkdir -p "$RUN"
DTGO=""
build_dtgo() {
	command -v go >/dev/null || { note "no Go toolchain"; return 1; }
	local env=(GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false")
	[[ ${GO_OFFLINE:-0} == 1 ]] && env+=(GOPROXY=off)
	(cd "$HERE/go-pg" && env "${env[@]}" go build -o "$WORK/bin/dtgo-pg" .) >"$RUN/go-build.log" 2>&1 \
		|| { cat "$RUN/go-build.log" >&2; return 1; }
}
note "building bench/go-pg into $WORK/bin/dtgo-pg"
if build_dtgo; then
	DTGO=$WORK/bin/dtgo-pg
	PEER_VERSION=$(cd "$HERE/go-pg" && GOFLAGS=-mod=readonly \
		go list -m -f '{{.Version}}' github.com/microsoft/durabletask-go 2>/dev/null || echo '?')
elif [[ ${GO_OFFLINE:-0} == 1 ]]; then
	note "durabletask-go left out: bench/go-pg did not build offline (it needs its modules in the Go module cache)"
	PEER_VERSION=none
else
	die "cannot build bench/go-pg"
fi

# ---- PostgreSQL -----------------------------------------------------------------------------------------------
PGTMP=$(mktemp -d)
chmod 755 "$PGTMP" # initdb runs as postgres when root
note "starting PostgreSQL in $PGTMP/pg"
bash "$PGSH" start "$PGTMP/pg" >/dev/null
PG_VERSION=$("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/postgres" --version | awk '{print $3}')

# Clock ticks of the PostgreSQL server: the postmaster (and the children it has reaped) plus its live children.
pg_ticks() {
	local pm
	pm=$(head -1 "$PGTMP/pg/data/postmaster.pid")
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$pm" '{
		pid = $1; sub(/^.*\) /, "")   # now $1 is the state, $2 the ppid, $12..$15 utime stime cutime cstime
		if (pid == pm) t += $12 + $13 + $14 + $15; else if ($2 == pm) t += $12 + $13
	} END { print t + 0 }'
}

# ---- sidecars -------------------------------------------------------------------------------------------------
# spawn_taskhubd NAME STORE REPLICA_ID: starts taskhubd on port 0 (STORE: a conninfo, or rocksdb:DIR), its log in
# RUN/NAME.log; appends its pid to PIDS and sets READY_FD, this shell's reading end of its --ready-fd.
spawn_taskhubd() {
	local name=$1 store=$2 rid=$3 fifo=$RUN/$1.ready
	rm -f "$fifo"
	mkfifo "$fifo"
	local where=(--store "$store")
	[[ $store == rocksdb:* ]] && where=(--data-dir "${store#rocksdb:}")
	caged "$name"
	"${CAGE[@]}" "$TASKHUBD" --listen 127.0.0.1:0 --ready-fd 3 --ops-listen off --replica-id "$rid" "${where[@]}" \
		3>"$fifo" 2>"$RUN/$name.log" &
	PIDS+=("$!")
	exec {READY_FD}<"$fifo" # returns once taskhubd's end is open too
	rm -f "$fifo"
}

# read_port NAME FD PID SECONDS: sets PORT to what taskhubd PID wrote on FD within SECONDS, and closes FD. PORT is
# "" if PID is still running without having written (a standby); fails if PID exited without serving.
read_port() {
	local name=$1 fd=$2 pid=$3 wait=$4
	PORT=""
	read -r -t "$wait" PORT <&"$fd" || true
	exec {fd}<&-
	[[ $PORT =~ ^[0-9]+$ ]] && return 0
	PORT=""
	kill -0 "$pid" 2>/dev/null || { tail -20 "$RUN/$name.log" >&2; die "taskhubd $name exited without serving"; }
}

# start_taskhubd NAME STORE REPLICA_ID: spawn_taskhubd, then its port within 60 s (or fail).
start_taskhubd() {
	spawn_taskhubd "$@"
	read_port "$1" "$READY_FD" "${PIDS[-1]}" 60
	[[ -n $PORT ]] || die "taskhubd $1 did not report its port within 60 s"
}

# start_dtgo NAME CONNINFO: sets PORT from the "server listening at" line (30 s deadline).
start_dtgo() {
	local name=$1 t
	: >"$RUN/$name.out" # before the background redirect opens it, which may come after the first read below
	caged "$name"
	"${CAGE[@]}" "$DTGO" -store "$2" -host 127.0.0.1 -port 0 -max-conns "$DTGO_MAX_CONNS" -parallelism "$DTGO_PARALLELISM" \
		>"$RUN/$name.out" 2>"$RUN/$name.log" &
	local pid=$!
	PIDS+=("$pid")
	PORT=""
	for ((t = 0; t < 300; t++)); do
		PORT=$(sed -n 's/^server listening at 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$RUN/$name.out")
		[[ -n $PORT ]] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	tail -20 "$RUN/$name.log" >&2
	die "durabletask-go ($name) did not start"
}

# stop_all: SIGTERM to every sidecar of the configuration, each waited for (30 s, then SIGKILL).
stop_all() {
	local p rc
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		if ! timeout 30 tail --pid="$p" -s 0.05 -f /dev/null; then
			note "sidecar $p still running 30 s after SIGTERM: SIGKILL"
			kill -KILL "$p" 2>/dev/null || true
		fi
		rc=0
		wait "$p" 2>/dev/null || rc=$?
		((rc == 0)) || note "sidecar $p exited with status $rc"
	done
	PIDS=()
}

# ---- runs -----------------------------------------------------------------------------------------------------
declare -A FIG # scenario/config/round: throughput, or 1000/p50_ms for latency
# bench KEY TAGS TARGETS [TH_BENCH_ARGS...]: th-bench hello_cities5 and latency against TARGETS
# (comma-separated), every sidecar of PIDS measured; prints the RESULT lines with TAGS and db_cpu_s appended.
bench() {
	local key=$1 tags=$2 targets=$3 pids sc n line out rc t0 t1 db
	shift 3
	pids=$(IFS=,; echo "${PIDS[*]}")
	for sc in hello_cities5 latency; do
		n=$COUNT; [[ $sc == latency ]] && n=$LAT
		t0=$(pg_ticks)
		rc=0
		# In the background and waited for, so that a signal reaches the trap at once, not after th-bench ends.
		timeout "$CLIENT_TIMEOUT" "$THBENCH" "$targets" "$sc" "$n" --sidecar-pid "$pids" "$@" \
			>"$RUN/$key-$ROUND.$sc.out" 2>>"$RUN/$key.client.log" &
		CLIENT=$!
		wait "$CLIENT" || rc=$?
		CLIENT=""
		out=$(<"$RUN/$key-$ROUND.$sc.out")
		t1=$(pg_ticks)
		if ((rc != 0)); then
			echo "$out"
			tail -20 "$RUN/$key.client.log" >&2
			die "th-bench $sc against $key failed (status $rc); logs in $RUN"
		fi
		db=0
		[[ $tags == *store=postgres* ]] &&
			db=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')
		while read -r line; do
			[[ $line == RESULT* ]] || continue
			echo "$line $tags db_cpu_s=$db round=$ROUND${REPLICA_CPU:+ replica_cpu=$REPLICA_CPU}"
			if [[ $sc == latency ]]; then
				line=${line#*p50_ms=}
				FIG[$sc/$key/$ROUND]=$(awk -v m="${line%% *}" 'BEGIN { if (m > 0) printf "%.4f", 1000 / m }')
			else
				line=${line#*throughput=}
				FIG[$sc/$key/$ROUND]=${line%% *}
			fi
		done <<<"$out"
	done
}

run_rocksdb() {
	start_taskhubd "rocksdb-$ROUND" "rocksdb:$RUN/rocksdb-$ROUND.data" r1
	bench rocksdb "store=rocksdb replicas=1 serving=1 sidecar=taskhubd" "127.0.0.1:$PORT"
	stop_all
}

run_pg1() {
	local db
	db=$(bash "$PGSH" createdb "$PGTMP/pg" "th_pg1_$ROUND")
	start_taskhubd "pg1-$ROUND" "$db" r1
	bench pg1 "store=postgres replicas=1 serving=1 sidecar=taskhubd" "127.0.0.1:$PORT"
	stop_all
}

# Three replicas on one database: r1 first, until it serves; then r2 and r3 together, each given until
# REPLICA_WAIT seconds after their start to report a port. Those that do not are standbys, left out of th-bench's
# targets (but measured: their CPU and RSS count in the sums).
run_pg3() {
	local db targets serving=1 deadline r fds=() pids=() i left
	db=$(bash "$PGSH" createdb "$PGTMP/pg" "th_pg3_$ROUND")
	start_taskhubd "pg3-$ROUND-r1" "$db" r1
	targets=127.0.0.1:$PORT
	deadline=$((SECONDS + REPLICA_WAIT))
	for r in r2 r3; do
		spawn_taskhubd "pg3-$ROUND-$r" "$db" "$r"
		fds+=("$READY_FD")
		pids+=("${PIDS[-1]}")
	done
	for i in 0 1; do
		r=r$((i + 2))
		left=$((deadline - SECONDS))
		((left > 0)) || left=1
		read_port "pg3-$ROUND-$r" "${fds[$i]}" "${pids[$i]}" "$left"
		if [[ -n $PORT ]]; then
			targets+=",127.0.0.1:$PORT"
			serving=$((serving + 1))
		else
			note "replica $r is a standby (no port within $REPLICA_WAIT s; $(grep -c 'event=partitions_waiting' \
				"$RUN/pg3-$ROUND-$r.log" || true) partitions_waiting lines in its log)"
		fi
	done
	note "three replicas on th_pg3_$ROUND, $serving serving: $targets"
	bench pg3 "store=postgres replicas=3 serving=$serving sidecar=taskhubd" "$targets" --settle "$REPLICA_SETTLE"
	stop_all
}

run_dtgo() {
	local db
	db=$(bash "$PGSH" createdb "$PGTMP/pg" "dtgo_pg_$ROUND")
	start_dtgo "dtgo-pg-$ROUND" "$db"
	bench dtgo "store=postgres replicas=1 serving=1 sidecar=durabletask-go" "127.0.0.1:$PORT"
	stop_all
}

ratio() { # A B: A/B with two decimals, or "-" when either is missing
	awk -v a="${1:-}" -v b="${2:-}" \
		'BEGIN { if (a == "" || b == "" || b + 0 <= 0) print "-"; else printf "%.2f", a / b }'
}

note "COUNT=$COUNT LATENCY_RUNS=$LAT ROUNDS=$ROUNDS taskhubd=$TASKHUBD PostgreSQL=$PG_VERSION" \
	"durabletask-go=$PEER_VERSION (max-conns $DTGO_MAX_CONNS, parallelism $DTGO_PARALLELISM)"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	run_rocksdb
	run_pg1
	run_pg3
	[[ -n $DTGO ]] && run_dtgo
done
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for sc in hello_cities5 latency; do
		p1=${FIG[$sc/pg1/$ROUND]:-}
		[[ -n $DTGO ]] && echo "RATIO scenario=$sc round=$ROUND" \
			"taskhubd_pg1_over_durabletask_go_pg=$(ratio "$p1" "${FIG[$sc/dtgo/$ROUND]:-}")"
		echo "RATIO scenario=$sc round=$ROUND taskhubd_pg3_over_pg1=$(ratio "${FIG[$sc/pg3/$ROUND]:-}" "$p1")"
		echo "RATIO scenario=$sc round=$ROUND taskhubd_pg1_over_rocksdb=$(ratio "$p1" "${FIG[$sc/rocksdb/$ROUND]:-}")"
	done
done
note "done in $(($(date +%s) - START)) s; logs in $RUN"
