#!/usr/bin/env bash
# samples.valgrind: the chaining sample under valgrind memcheck against a real taskhubd, asserting no memory
# errors and no definite leaks in the SDK or the sample (and the sample's usual result).
# Valgrind cannot run AddressSanitizer binaries, so this script compiles the sample, the SDK sources and the
# generated protobuf-c sources itself, without sanitizers (gcc -O1 -g), into its temp dir.
# usage: test_valgrind.sh SDK_DIR GEN_DIR SAMPLE_C SDK_GEN_DIR
#   SDK_DIR      sdk-c/ (include/ and src/*.c)
#   GEN_DIR      the build tree's gen/ (orchestrator_service.pb-c.c, google/protobuf/*.pb-c.c)
#   SAMPLE_C     samples/chaining/chaining.c
#   SDK_GEN_DIR  the build tree's sdk-c/include/ (durabletask_version.h, which durabletask.h includes)
# Skipped (exit 77) when valgrind is not installed.
. "$(dirname "$0")/lib.sh"
sdk=$1
gen=$2
src=$3
sdk_gen=$4

command -v valgrind >/dev/null || { echo "SKIP: valgrind is not installed"; exit 77; }
cc=${CC:-gcc}
bin="$T/sample_chaining"
# shellcheck disable=SC2046
"$cc" -std=c11 -O1 -g -pthread -D_GNU_SOURCE -I"$sdk/include" -I"$sdk_gen" -I"$sdk/src" -I"$gen" \
  $(pkg-config --cflags grpc libprotobuf-c libcrypto json-c) \
  -o "$bin" "$src" "$sdk"/src/*.c "$gen/orchestrator_service.pb-c.c" "$gen"/google/protobuf/*.pb-c.c \
  $(pkg-config --libs grpc libprotobuf-c libcrypto json-c) >"$T/compile.err" 2>&1 ||
  fail "compiling the chaining sample without sanitizers failed"

start_server
run_sample chaining valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --num-callers=30 --log-file="$T/valgrind.log" "$bin" "$TARGET"
expect_line chaining 'status: COMPLETED'
expect_line chaining 'result: {"title":"durable task, in c","slug":"durable-task-in-c","url":"https://blog.example.com/posts/durable-task-in-c"}'
grep -q 'ERROR SUMMARY: 0 errors' "$T/valgrind.log" || fail "valgrind reported errors"
stop_server
echo "PASS"
