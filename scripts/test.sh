#!/usr/bin/env bash
# Installs dependencies, builds everything with AddressSanitizer + UndefinedBehaviorSanitizer, and runs every
# test: unit, integration, interop, samples, ops, bench smoke, fuzzing (bounded runs of fuzz/), and k8s (helm
# chart checks, the container image build and the pod run with podman); then the integration tests again under
# ThreadSanitizer (scripts/test-tsan.sh). Extra arguments go to ctest, e.g. `-L unit` or `-R integration.start`
# (and skip the ThreadSanitizer stage).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The optimised build first: -O3 finds warnings (made errors) that the debug build does not.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
# The libFuzzer targets (fuzz/, clang) in their own build; build-test runs each for a bounded time (label fuzz).
CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTASKHUBD_FUZZ=ON >/dev/null
cmake --build build-fuzz --target fuzz_targets
cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTASKHUBD_SANITIZE=ON -DTASKHUBD_K8S_TESTS=ON \
  -DTASKHUBD_FUZZ_DIR="$PWD/build-fuzz" >/dev/null
cmake --build build-test
# Tests start many servers at once: give each ops port a free port rather than the default 9464.
export TASKHUBD_OPS_LISTEN="${TASKHUBD_OPS_LISTEN:-127.0.0.1:0}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --test-dir build-test --output-on-failure -j2 "$@"
# The crash-consistency harness's summary line (tests/fault/chaos.py; ctest shows a passing test's output only in
# its log), so that every run's output carries it.
grep -h "^SUMMARY kills=" build-test/Testing/Temporary/LastTest*.log 2>/dev/null || true
# ThreadSanitizer over the integration tests (docs/testing.md); skipped when arguments select particular tests.
if [ "$#" -eq 0 ]; then
  bash scripts/test-tsan.sh
fi
