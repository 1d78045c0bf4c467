#!/usr/bin/env bash
# samples.blob: the checkpointing blob job survives a SIGKILL of taskhubd. The sample runs against our server;
# once it reports chunk 12 of 40 done (chunks 1-11 are then committed: chunk 12 was only scheduled after they
# were), taskhubd is SIGKILLed and started again on the same data dir and port. The sample must ride out the
# outage and finish with exactly the totals of an uninterrupted run (which it also checks itself: exit 0).
# Progress is read from the sample's output as it is written; no sleeps synchronise anything.
# usage: test_blob.sh SAMPLE_BIN
. "$(dirname "$0")/lib.sh"
sample=$1

start_server
port=$SERVER_PORT
: >"$T/blob.out"
exec {out}< <(exec timeout --signal=KILL 240 "$sample" "$TARGET" --chunk-delay-ms 40 2>"$T/blob.err")
spid=$!

seen=""
while IFS= read -r -t 60 -u "$out" line; do
  printf '%s\n' "$line" >>"$T/blob.out"
  case $line in
    "chunk 12/40:"*) seen=1; break ;;
    "result:"*) fail "the sample finished before the kill" ;;
  esac
done
[ -n "$seen" ] || fail "the sample never reported chunk 12/40"

kill_server
echo "killed taskhubd after chunk 12; restarting it on port $port"
start_server "$port"
[ "$SERVER_PORT" = "$port" ] || fail "the restarted taskhubd is on port $SERVER_PORT, not $port"

while IFS= read -r -t 120 -u "$out" line; do
  printf '%s\n' "$line" >>"$T/blob.out"
done
rc=0
wait "$spid" || rc=$?
exec {out}<&-
[ "$rc" -eq 0 ] || fail "sample_blob exited with status $rc"

expect_line blob 'status: COMPLETED'
expect_line blob 'result: {"blob":"logs/access-2024-06-01.log","bytes":163840,"chunks":40,"lines":2715,"sum":9660397,"executions":5}'
expect_count blob '^lost the sidecar' 1
expect_order blob 'chunk 12/40: offset 45056, 69 lines' 'lost the sidecar (server unavailable); waiting for it to come back'
# Every chunk was processed, and the ones after the restart by the restarted server.
for i in $(seq 1 40); do
  grep -q "^chunk $i/40:" "$T/blob.out" || fail "chunk $i was never processed"
done
kill_line=$(grep -n '^lost the sidecar' "$T/blob.out" | cut -d: -f1)
last_chunk=$(grep -n '^chunk 40/40:' "$T/blob.out" | tail -n 1 | cut -d: -f1)
[ "$last_chunk" -gt "$kill_line" ] || fail "the last chunk was processed before the kill"
stop_server
echo "PASS"
