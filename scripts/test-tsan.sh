#!/usr/bin/env bash
# The ThreadSanitizer stage of the test command (scripts/test.sh runs it last): builds build-tsan/ with
# -DTASKHUBD_TSAN=ON and runs the integration, hostile, C SDK, sample and multi-replica PostgreSQL tests against
# the instrumented taskhubd, SDK and clients. A race report fails the test that met it: the process stops at the
# first report (exit status 66) and the tests fail on "ThreadSanitizer" in a server's log. Extra arguments go to
# ctest, e.g. `bash scripts/test-tsan.sh -R hostile_leases`: they replace the default selection (-R below), and
# the exclusions stay.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTASKHUBD_TSAN=ON >/dev/null
cmake --build build-tsan
export TASKHUBD_OPS_LISTEN="${TASKHUBD_OPS_LISTEN:-127.0.0.1:0}"
# The suppressions name only uninstrumented Debian libraries (see the file); the caller's options come last and win.
TSAN_OPTIONS="suppressions=$PWD/tests/tsan/tsan.supp:halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
export TSAN_OPTIONS
# Left out, to keep this stage near 3 minutes on 2 cores (TSan runs tests 3-6x slower than ASan does):
#   ctl_*            taskhubctl's command-line behaviour (one thread; the server side is what the other tests drive)
#   samples.valgrind builds its own uninstrumented copy
#   ops.python       the Python ops-port suite (the ops thread is exercised by the hostile ops tests)
#   hostile_reads_pathological_query_does_not_stall
#                    a bulk load (60,000 instances) and a 250 ms latency bound that TSan's slowdown breaks, not
#                    the code
#   hostile_ops_healthz_answers_while_metrics_count
#                    200,000 instances loaded, and /healthz within 50 ms while they are counted; the counting
#                    thread's start, handover and stop stay covered by hostile_ops_probes_during_shutdown
#   integration_pg.* but the multi-replica scenarios: the single-server tests repeat the RocksDB ones; the
#                    replicas' partition, lease and listener threads are what PostgreSQL adds (the pg fixture,
#                    a PostgreSQL initdb'd in build-tsan/pg, comes with them)
exclude='\.ctl_|^samples\.valgrind$|hostile_reads_pathological_query_does_not_stall'
exclude+='|hostile_ops_healthz_answers_while_metrics_count'
if [ "$#" -eq 0 ]; then
  set -- -R '^(integration|hostile|samples)\.|^integration_pg\.scen_postgres_'
fi
ctest --test-dir build-tsan --output-on-failure -j2 -E "$exclude" "$@"
