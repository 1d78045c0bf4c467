#!/usr/bin/env bash
# samples.ops_port: the servers of the sample tests never depend on the ops port that the environment (or, without
# it, taskhubd's default 9464) names. A port held by another process stands for a taken 9464: TASKHUBD_OPS_LISTEN
# points at it, as a plain ctest run on a machine with 9464 in use would leave taskhubd, and the chaining sample
# must still run against a server that lib.sh starts.
# usage: test_ops_port.sh SAMPLE_BIN (the chaining sample)
. "$(dirname "$0")/lib.sh"
sample=$1

command -v python3 >/dev/null || { echo "SKIP: python3 (the port holder) is not installed"; exit 77; }
# The holder listens until its stdin (our end of the coprocess pipe) closes, i.e. until this script exits.
coproc HOLDER {
  exec python3 -c 'import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
sys.stdin.read()'
}
busy=""
read -r -t 30 -u "${HOLDER[0]}" busy || true
case "$busy" in
  '' | *[!0-9]*) fail "the port holder did not report a port (read '$busy')" ;;
esac
export TASKHUBD_OPS_LISTEN="127.0.0.1:$busy"

start_server
run_sample chaining "$sample" "$TARGET"
expect_line chaining 'status: COMPLETED'
stop_server
echo "PASS"
