#!/usr/bin/env bash
# What TLS, mutual TLS and bearer tokens cost: th-bench hello_cities5 (throughput) and latency against taskhubd
# in plaintext, with a token file, and with TLS + a client CA + a token file, each on a fresh data directory.
# Prints th-bench's RESULT lines with security=plain|token|tls_mtls_token appended.
#   bench/security.sh [BUILD_DIR] [ORCHESTRATIONS] [LATENCY_RUNS]      (defaults: build 2000 200)
# The PKI is a throwaway one (tests/support/make-pki.sh, the openssl CLI) in a temporary directory.
set -euo pipefail
build=${1:-build}
n=${2:-2000}
lat=${3:-200}
here=$(cd "$(dirname "$0")" && pwd)
bin="$build/sidecar/taskhubd"
bench="$build/bench/th-bench"
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
bash "$here/../tests/support/make-pki.sh" "$work/pki"
token=$(openssl rand -hex 32)
printf '# bench\n%s\n' "$token" >"$work/tokens"

start() { # start NAME [taskhubd options]: sets pid and port
  local fifo="$work/ready.$1"
  mkfifo "$fifo"
  "$bin" --listen 127.0.0.1:0 --data-dir "$work/$1" --ops-listen off --log-level warn --ready-fd 3 "${@:2}" \
    3>"$fifo" 2>>"$work/taskhubd.log" &
  pid=$!
  if ! read -r -t 60 port <"$fifo"; then
    echo "taskhubd did not start; its log:" >&2
    cat "$work/taskhubd.log" >&2
    exit 1
  fi
}
stop() {
  kill -TERM "$pid"
  wait "$pid"
  pid=""
}
run() { # run LABEL SCENARIO COUNT
  "$bench" "127.0.0.1:$port" "$2" "$3" --sidecar-pid "$pid" | sed "/^RESULT /s/\$/ security=$1/"
}

start plain
run plain hello_cities5 "$n"
run plain latency "$lat"
stop

start token --auth-token-file "$work/tokens"
TASKHUBD_AUTH_TOKEN=$token run token hello_cities5 "$n"
TASKHUBD_AUTH_TOKEN=$token run token latency "$lat"
stop

start tls --tls-cert "$work/pki/server.pem" --tls-key "$work/pki/server.key" --tls-client-ca "$work/pki/ca.pem" \
  --auth-token-file "$work/tokens"
export TH_BENCH_TLS_CA="$work/pki/ca.pem" TH_BENCH_TLS_CERT="$work/pki/client.pem" TH_BENCH_TLS_KEY="$work/pki/client.key"
TASKHUBD_AUTH_TOKEN=$token run tls_mtls_token hello_cities5 "$n"
TASKHUBD_AUTH_TOKEN=$token run tls_mtls_token latency "$lat"
stop
