#!/usr/bin/env bash
# install.*: the C SDK as it is installed. Each test installs the build's `sdk` component into a fresh prefix in
# its temp dir and then, by MODE:
#   layout     checks what was installed: the libraries, soname, exported symbols, headers, pkg-config file and
#              CMake package, and nothing else (no taskhubd); no server
#   pkgconfig  compiles greet.c with the flags of `pkg-config --cflags --libs durabletask` alone and runs it
#              against a taskhubd of its own
#   cmake      builds consumer/ (find_package(durabletask CONFIG)): greet.c linked with durabletask::durabletask
#              and with durabletask::durabletask_static, and runs both against a taskhubd of its own
# The programs are compiled with the build's compiler (CC): a sanitized build's SDK asks for the sanitizer
# runtime at link time (the .pc's Libs and the CMake targets carry the flags), and that runtime is the compiler's.
# usage: test_install.sh MODE BUILD_DIR LIBDIR VERSION GENERATOR
#   LIBDIR     CMAKE_INSTALL_LIBDIR (lib, or lib/<multiarch>)
#   GENERATOR  CMake generator for consumer/
. "$(dirname "$0")/../samples/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
mode=$1
build=$2
libdir=$3
version=$4
generator=$5
major=${version%%.*}
cc=${CC:-cc}

prefix="$T/prefix"
cmake --install "$build" --prefix "$prefix" --component sdk >"$T/install.log" 2>&1 ||
  fail "cmake --install --component sdk failed"
lib="$prefix/$libdir"

# run_greet NAME BINARY [ENV...]: runs the program against the server; its version line and result must be right.
run_greet() {
  local name=$1 bin=$2
  shift 2
  run_sample "$name" env "$@" "$bin" "$TARGET" "$version"
  expect_line "$name" "version: $version"
  expect_line "$name" 'status: COMPLETED'
  expect_line "$name" 'result: ["Hello, Tokyo!","Hello, Seattle!","Hello, London!"]'
}

# uses_installed_lib NAME BINARY [ENV...]: the binary loads libdurabletask.so.MAJOR from the prefix.
uses_installed_lib() {
  local name=$1 bin=$2
  shift 2
  local found
  found=$(env "$@" ldd "$bin" | awk -v so="libdurabletask.so.$major" '$1 == so { print $3 }')
  [ -n "$found" ] || fail "$name does not load libdurabletask.so.$major (ldd: $(env "$@" ldd "$bin" | tr '\n' ' '))"
  [ "$(realpath "$found")" = "$(realpath "$lib/libdurabletask.so.$version")" ] ||
    fail "$name loads $found, not the installed $lib/libdurabletask.so.$version"
}

case "$mode" in
layout)
  for f in "$lib/libdurabletask.so.$version" "$lib/libdurabletask.a" "$prefix/include/durabletask.h" \
    "$prefix/include/durabletask_version.h" "$lib/pkgconfig/durabletask.pc" \
    "$lib/cmake/durabletask/durabletask-config.cmake" "$lib/cmake/durabletask/durabletask-config-version.cmake"; do
    [ -f "$f" ] || fail "not installed: ${f#"$prefix"/}"
  done
  [ "$(readlink "$lib/libdurabletask.so.$major")" = "libdurabletask.so.$version" ] ||
    fail "libdurabletask.so.$major is not a link to libdurabletask.so.$version"
  [ "$(readlink "$lib/libdurabletask.so")" = "libdurabletask.so.$major" ] ||
    fail "libdurabletask.so is not a link to libdurabletask.so.$major"
  # The sdk component is the SDK alone: include/ and the library directory, no taskhubd, taskhubctl or man page.
  top=$(cd "$prefix" && ls -A | tr '\n' ' ')
  [ "$top" = "include ${libdir%%/*} " ] || fail "the sdk component installed more than the SDK: $top"
  [ "$(ls -A "$prefix/include" | tr '\n' ' ')" = "durabletask.h durabletask_version.h " ] ||
    fail "unexpected headers: $(ls -A "$prefix/include" | tr '\n' ' ')"

  soname=$(readelf -d "$lib/libdurabletask.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
  [ "$soname" = "libdurabletask.so.$major" ] || fail "soname is '$soname', expected libdurabletask.so.$major"
  # The shared library exports exactly the functions durabletask.h declares: no internals (dt__*), no protobuf-c.
  nm -D --defined-only "$lib/libdurabletask.so.$version" | awk '{ print $3 }' | sort >"$T/exported.txt"
  grep -o '\bdt_[a-z0-9_]*(' "$prefix/include/durabletask.h" | tr -d '(' | sort -u >"$T/declared.txt"
  [ -s "$T/declared.txt" ] || fail "found no declarations in durabletask.h"
  diff "$T/declared.txt" "$T/exported.txt" >"$T/symbols.err" ||
    fail "exported symbols differ from durabletask.h's functions (< declared only, > exported only)"
  # The static library carries the wire contract's generated code, which is not installed.
  # (grep reads all of its input: with -q an early exit would fail the pipeline on SIGPIPE under pipefail.)
  ar t "$lib/libdurabletask.a" >"$T/members.txt" || fail "ar cannot read libdurabletask.a"
  grep -Fxq 'orchestrator_service.pb-c.c.o' "$T/members.txt" ||
    fail "libdurabletask.a lacks the generated orchestrator_service code"
  nm --defined-only "$lib/libdurabletask.a" >"$T/static-symbols.txt" 2>/dev/null || fail "nm cannot read libdurabletask.a"
  grep -Eq ' [DR] orchestrator_request__descriptor$' "$T/static-symbols.txt" ||
    fail "libdurabletask.a does not define orchestrator_request__descriptor"

  # Neither header may need anything that is not installed (the generated protobuf-c headers, gRPC).
  echo '#include "durabletask.h"' >"$T/only_header.c"
  "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$prefix/include" "$T/only_header.c" \
    2>"$T/header.err" ||
    fail "durabletask.h does not compile on its own from the prefix"
  grep -Fxq "#define DURABLETASK_VERSION \"$version\"" "$prefix/include/durabletask_version.h" ||
    fail "durabletask_version.h does not define DURABLETASK_VERSION \"$version\""
  got=$(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --modversion durabletask) || fail "pkg-config finds no durabletask"
  [ "$got" = "$version" ] || fail "durabletask.pc says version $got, expected $version"
  ;;

pkgconfig)
  export PKG_CONFIG_PATH="$lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  flags=$(pkg-config --cflags --libs durabletask) || fail "pkg-config --cflags --libs durabletask failed"
  # shellcheck disable=SC2086
  "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$T/greet" "$here/greet.c" $flags 2>"$T/compile.err" ||
    fail "compiling greet.c with '$flags' failed"
  libpath=$(pkg-config --variable=libdir durabletask)
  uses_installed_lib greet "$T/greet" LD_LIBRARY_PATH="$libpath"
  start_server
  run_greet greet "$T/greet" LD_LIBRARY_PATH="$libpath"
  stop_server
  ;;

cmake)
  cmake -S "$here/consumer" -B "$T/consumer" -G "$generator" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_PREFIX_PATH="$prefix" -DGREET_C="$here/greet.c" -DDURABLETASK_EXPECTED_VERSION="$version" \
    >"$T/configure.log" 2>&1 || fail "configuring consumer/ failed"
  grep -Fq -- "-- durabletask_DIR=$lib/cmake/durabletask" "$T/configure.log" ||
    fail "find_package(durabletask) did not find the package in the prefix"
  cmake --build "$T/consumer" >"$T/build.log" 2>&1 || fail "building consumer/ failed"
  # The shared build finds the library through the RPATH CMake gives it; the static one does not load it at all.
  uses_installed_lib greet_shared "$T/consumer/greet_shared"
  readelf -d "$T/consumer/greet_static" >"$T/greet_static.dynamic" || fail "readelf cannot read greet_static"
  if grep -q 'libdurabletask' "$T/greet_static.dynamic"; then
    fail "greet_static needs libdurabletask.so"
  fi
  start_server
  run_greet greet_shared "$T/consumer/greet_shared"
  run_greet greet_static "$T/consumer/greet_static"
  stop_server
  ;;

*)
  fail "unknown mode '$mode'"
  ;;
esac
echo "PASS"
