#!/usr/bin/env bash
# Runs one fuzz target: run.sh BINARY SECONDS WORKDIR CORPUS [libFuzzer flags...]
#   SECONDS > 0: fuzzes that long, starting from the committed CORPUS; new inputs go to WORKDIR/corpus (never into
#                the source tree) and a crashing input to WORKDIR/crash-*, which is what to commit under
#                fuzz/regressions/<target>/ once fixed.
#   SECONDS = 0: runs every input of CORPUS once (the regression replay).
# Prints libFuzzer's final statistics (executions, coverage); fails when the target crashes, leaks or hangs.
set -euo pipefail
bin=$1 secs=$2 work=$3 corpus=$4
shift 4
[ -x "$bin" ] || { echo "no fuzz target at $bin: build it with scripts/test.sh (or see docs/fuzzing.md)" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work/corpus"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}:halt_on_error=1"
if [ "$secs" = 0 ]; then
  shopt -s nullglob
  inputs=("$corpus"/*)
  [ ${#inputs[@]} -gt 0 ] || { echo "no inputs in $corpus" >&2; exit 1; }
  exec "$bin" -runs=0 -print_final_stats=1 -timeout=60 -artifact_prefix="$work/" "$@" "${inputs[@]}"
fi
exec "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=60 -rss_limit_mb=3072 \
  -artifact_prefix="$work/" "$@" "$work/corpus" "$corpus"
