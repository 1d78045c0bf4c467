#!/usr/bin/env bash
# The ThreadSanitizer stage of the test command (scripts/test.sh runs it last): builds build-tsan/ with
# -DTASKHUBD_TSAN=ON and runs the integration, hostile, C SDK, sample and multi-replica PostgreSQL tests against
# the instrumented taskhubd, SDK and clients. A race report fails the test that met it: the process stops at the
# first report (exit status 66) and the tests fail on "ThreadSanitizer" in a server's log. Extra arguments go to
# ctest, e.g. `bash scripts/test-tsan.sh -R hostile_leases` (they replace the default selection's -L, not its -E).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTASKHUBD_TSAN=ON >/dev/null
cmake --build build-tsan
export TASKHUBD_OPS_LISTEN="${TASKHUBD_OPS_LISTEN:-127.0.0.1:0}"
# The suppressions name only uninstrumented Debian libraries (see the file); the caller's options come last and win.
export TSAN_OPTIONS="suppressions=$PWD/tests/tsan/tsan.supp:halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
# Left out, to keep this stage near 3 minutes on 2 cores (TSan runs them 3-6x slower than ASan does):
#   ctl_*            taskhubctl's command-line behaviour (one thread; the server side is what the other tests drive)
#   samples.valgrind builds its own uninstrumented copy
#   ops.python       the Python ops-port suite (the ops thread is exercised by the hostile ops tests)
#   hostile_reads_pathological_query_does_not_stall, hostile_worker_that_never_reads
#                    bulk runs (60,000 and 400 instances) bounded by wall-clock limits that TSan's slowdown breaks
#   integration_pg.* but the multi-replica scenarios: the single-server tests repeat the RocksDB ones; the
#                    replicas' partition, lease and listener threads are what PostgreSQL adds
exclude='\.ctl_|^samples\.valgrind$|^ops\.python$|hostile_reads_pathological_query_does_not_stall|hostile_worker_that_never_reads'
if [ "$#" -gt 0 ]; then
  exec ctest --test-dir build-tsan --output-on-failure -j2 -E "$exclude" "$@"
fi
rc=0
ctest --test-dir build-tsan --output-on-failure -j2 -L '^(integration|hostile)$' -LE '^pg$' -E "$exclude" || rc=$?
# The pg fixture (a PostgreSQL initdb'd in build-tsan/pg) comes with them.
ctest --test-dir build-tsan --output-on-failure -j2 -R '^integration_pg\.scen_postgres_' || rc=$?
exit "$rc"
