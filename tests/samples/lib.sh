# Helpers for the sample tests (sourced by test_*.sh): a taskhubd of our own on a free port with a fresh data
# dir, the sample run against it, exact assertions on its output, and a clean SIGTERM stop at the end.
#
#   TASKHUBD_BIN      the taskhubd binary (ctest sets it); unset: the test is skipped (exit 77)
#   SAMPLE_KEEP_TMP   set to keep the temp dir (data dir, logs, outputs) after the test
#
# Everything lives in $T (a mktemp -d dir): data/ (RocksDB), server-N.log (stderr of the N-th start),
# and whatever the test writes. On failure every log is printed; the server is never left running.

set -uo pipefail

if [ -z "${TASKHUBD_BIN:-}" ]; then
  echo "SKIP: TASKHUBD_BIN is not set"
  exit 77
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/th-sample.XXXXXX")
SERVER_PID=""
SERVER_PORT=""
SERVER_STARTS=0
FAILED=0

dump_logs() {
  local f
  for f in "$T"/*.log "$T"/*.out "$T"/*.err; do
    [ -s "$f" ] || continue
    echo "---------------- $(basename "$f")"
    tail -n 200 "$f"
  done
}

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    dump_logs
  fi
  if [ -z "${SAMPLE_KEEP_TMP:-}" ]; then
    rm -rf "$T"
  else
    echo "kept $T"
  fi
  exit "$rc"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# start_server [PORT]: starts taskhubd on 127.0.0.1:PORT (default 0: a free port) with data dir $T/data,
# learns the bound port through --ready-fd (a FIFO read with a timeout), and sets SERVER_PID and SERVER_PORT.
# The ops HTTP port is a free one too, given on the command line rather than left to the environment: with
# the default (9464) a plain ctest fails whenever something else holds that port, or tests run in parallel.
start_server() {
  local port=${1:-0}
  local log="$T/server-$SERVER_STARTS.log"
  local fifo="$T/ready-$SERVER_STARTS"
  SERVER_STARTS=$((SERVER_STARTS + 1))
  mkfifo "$fifo" || fail "mkfifo"
  "$TASKHUBD_BIN" --listen "127.0.0.1:$port" --ops-listen 127.0.0.1:0 --data-dir "$T/data" --ready-fd 3 \
    3>"$fifo" 2>"$log" &
  SERVER_PID=$!
  local got=""
  # Opening the FIFO for reading pairs with the server's write end; EOF (empty read) means it died first.
  read -r -t 30 got <"$fifo" || true
  rm -f "$fifo"
  case "$got" in
    '' | *[!0-9]*) fail "taskhubd (start #$SERVER_STARTS) did not report a port (read '$got')" ;;
  esac
  SERVER_PORT=$got
  TARGET="127.0.0.1:$SERVER_PORT"
}

# stop_server: SIGTERM, and taskhubd must exit with status 0 and a log free of sanitizer reports.
stop_server() {
  kill -TERM "$SERVER_PID" || fail "taskhubd is not running at the end"
  local rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=""
  [ "$rc" -eq 0 ] || fail "taskhubd exited with status $rc after SIGTERM"
  assert_clean_logs
}

# kill_server: SIGKILL and reap (a crash; the data dir stays).
kill_server() {
  kill -KILL "$SERVER_PID" || fail "taskhubd is not running when it should be killed"
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

assert_clean_logs() {
  local f
  for f in "$T"/*.log "$T"/*.err; do
    [ -e "$f" ] || continue
    if grep -Eq 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error:' "$f"; then
      fail "sanitizer report in $(basename "$f")"
    fi
  done
}

# run_sample NAME ARGS...: runs ARGS (the sample and its arguments) with a time limit, stdout to $T/NAME.out and
# stderr to $T/NAME.err, and asserts exit status 0.
run_sample() {
  local name=$1
  shift
  local rc=0
  timeout --signal=KILL 180 "$@" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
  [ "$rc" -eq 0 ] || fail "$name exited with status $rc"
}

# expect_line NAME LINE: the exact line LINE is in $T/NAME.out.
expect_line() {
  grep -Fxq -- "$2" "$T/$1.out" || fail "$1: no line '$2' in its output"
}

# expect_count NAME REGEX N: exactly N lines of $T/NAME.out match the extended regex REGEX.
expect_count() {
  local n
  n=$(grep -Ec -- "$2" "$T/$1.out")
  [ "$n" -eq "$3" ] || fail "$1: $n lines match '$2', expected $3"
}

# expect_order NAME LINE1 LINE2...: the exact lines appear in $T/NAME.out in this order.
expect_order() {
  local name=$1
  shift
  local last=0 line n
  for line in "$@"; do
    n=$(grep -Fxn -- "$line" "$T/$name.out" | head -n 1 | cut -d: -f1)
    [ -n "$n" ] || fail "$name: no line '$line' in its output"
    [ "$n" -gt "$last" ] || fail "$name: '$line' (line $n) comes before an earlier expected line (line $last)"
    last=$n
  done
}
