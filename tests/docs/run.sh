#!/usr/bin/env bash
# Runs the worker-and-client snippet of one docs/languages/<lang>.md page against a real taskhubd.
#
#   run.sh python VENV_DIR        the published Python SDK (tests/interop/python/requirements.txt) in VENV_DIR
#   run.sh js NODE_DIR            the published JS SDK (tests/interop/js/package*.json) installed in NODE_DIR
#   run.sh go                     durabletask-go at the version of tests/interop/go/go.mod
#   run.sh java-deps WORK_DIR     has Maven download what the Java snippet's build needs (a fixture; WORK_DIR
#                                 keeps a stamp so that this happens once per build tree and pom)
#   run.sh java WORK_DIR          builds the Java snippet with Maven offline (-o), and runs it
#   run.sh c BIN                  the C snippet, built by CMake from the page (tests/docs/CMakeLists.txt)
#
# The snippet is not a copy: extract.py takes the page's code blocks marked <!-- file: NAME --> and the test
# runs exactly that. The program reads the server's address from TASKHUBD_ADDRESS; it runs against a taskhubd
# of this test's own (tests/samples/lib.sh: a free port, a fresh data dir, a free ops port, SIGTERM at the end
# with exit status 0 and no sanitizer report), must exit 0 and print the orchestration's status and output.
# The server's log must show whether the SDK sent work-item filters as the page says.
#
# A missing toolchain skips the test (exit 77) on a developer's machine and fails it under CI (CI set), where
# scripts/install-deps.sh installs everything. The venv and the node_modules are the interop tests' own
# (same files, same stamps): CTest serialises the two users with RESOURCE_LOCK.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lang=${1:?usage: run.sh LANG ARG}
arg=${2:-}

skip_or_fail() {
  if [ -n "${CI:-}" ]; then
    echo "FAIL: $* (under CI every toolchain must be installed: scripts/install-deps.sh)" >&2
    exit 1
  fi
  echo "SKIP: $*"
  exit 77
}

need() {
  local t
  for t; do
    command -v "$t" >/dev/null 2>&1 || skip_or_fail "'$t' is not installed"
  done
}

# Maven: quiet, batch mode, never a color escape in its output. Its local repository is the usual one
# (~/.m2/repository), so that a machine downloads the SDK and the plugins once, as Go's module cache does.
mvn_run() {
  mvn -q -B -Dstyle.color=never "$@"
}

# java_project DIR: the Maven project of the Java page: the pom template with the page's dependencies block.
java_project() {
  local dir=$1
  mkdir -p "$dir/src/main/java"
  python3 "$here/extract.py" "$root/docs/languages/java.md" "$dir" dependencies.xml Greet.java || return 1
  mv "$dir/Greet.java" "$dir/src/main/java/Greet.java"
  python3 -c '
import sys
template, deps = (open(p, encoding="utf-8").read() for p in sys.argv[1:3])
marker = "<!-- @DEPENDENCIES@ -->\n"
if marker not in template:
    sys.exit("pom.xml.in has no " + marker.strip())
open(sys.argv[3], "w", encoding="utf-8").write(template.replace(marker, deps))
' "$here/java/pom.xml.in" "$dir/dependencies.xml" "$dir/pom.xml"
}

if [ "$lang" = java-deps ]; then
  # Not a test of the page: it only fills the Maven repository, so that `run.sh java` stays short and offline.
  need python3 java javac mvn
  state=${arg:?usage: run.sh java-deps WORK_DIR}
  mkdir -p "$state"
  work=$(mktemp -d "${TMPDIR:-/tmp}/th-docs-java.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  java_project "$work" || exit 1
  # Done already for this very pom (the page's dependencies in the template): nothing to fetch.
  stamp="$state/pom.sha256"
  want=$(sha256sum "$work/pom.xml" | cut -d' ' -f1)
  if [ "$want" = "$(cat "$stamp" 2>/dev/null)" ]; then
    echo "run.sh: Maven already has what this pom needs (delete $stamp to fetch again)"
    exit 0
  fi
  rm -f "$stamp"
  # go-offline fetches the plugins and dependencies; compile and build-classpath fetch what their runs load.
  (cd "$work" && mvn_run dependency:go-offline compile dependency:build-classpath -Dmdep.outputFile=cp.txt) ||
    exit 1
  echo "$want" >"$stamp"
  exit 0
fi

. "$root/tests/samples/lib.sh"
src="$T/src"

# start: the server, and its address for the snippet.
start() {
  start_server
  export TASKHUBD_ADDRESS=$TARGET
}

# extract NAME...: the page's marked blocks into $src.
extract() {
  python3 "$here/extract.py" "$root/docs/languages/$page" "$src" "$@" || fail "extracting $* from $page"
}

# expect_filters 0|1: whether the SDK's GetWorkItems stream asked for its registered names only.
expect_filters() {
  grep -q "event=worker_connected .* filters=$1\$" "$T/server-0.log" ||
    fail "taskhubd's log has no worker_connected line with filters=$1"
}

case "$lang" in
python)
  need python3
  page=python.md
  venv=${arg:?usage: run.sh python VENV_DIR}
  req="$root/tests/interop/python/requirements.txt"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || skip_or_fail "'python3 -m venv' failed (Debian: python3-venv)"
  fi
  stamp="$venv/.taskhubd-requirements.sha256"
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ "$want" != "$(cat "$stamp" 2>/dev/null)" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" || fail "pip install"
    echo "$want" >"$stamp"
  fi
  extract greet.py
  start
  PYTHONDONTWRITEBYTECODE=1 run_sample greet "$venv/bin/python" "$src/greet.py"
  expect_line greet 'COMPLETED "Hello, Tokyo!"'
  expect_filters 1
  ;;
js)
  need python3 node npm
  page=javascript.md
  work=${arg:?usage: run.sh js NODE_DIR}
  mkdir -p "$work"
  stamp="$work/.installed-lock"
  if ! { [ -d "$work/node_modules" ] && cmp -s "$stamp" "$root/tests/interop/js/package-lock.json" &&
    cmp -s "$work/package.json" "$root/tests/interop/js/package.json"; }; then
    rm -f "$stamp"
    cp "$root/tests/interop/js/package.json" "$root/tests/interop/js/package-lock.json" "$work/"
    (cd "$work" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci"
    cp "$root/tests/interop/js/package-lock.json" "$stamp"
  fi
  extract greet.js
  start
  NODE_PATH="$work/node_modules" run_sample greet node "$src/greet.js"
  expect_line greet 'COMPLETED "Hello, Tokyo!"'
  expect_filters 1
  ;;
go)
  need python3 go
  page=go.md
  extract main.go
  # The interop tests' module file pins durabletask-go and grpc (and go.sum holds their hashes).
  cp "$root/tests/interop/go/go.mod" "$root/tests/interop/go/go.sum" "$src/"
  if [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ] && [ -z "${GOCACHE:-}" ]; then
    export GOCACHE="$T/gocache" # as tests/interop/go/run.sh: go needs a cache directory
  fi
  if [ -z "${HOME:-}" ] && [ -z "${GOPATH:-}" ]; then
    export GOPATH="$T/gopath"
  fi
  (cd "$src" && GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" go build -o "$T/greet" .) >"$T/build.err" 2>&1 ||
    fail "go build"
  start
  run_sample greet "$T/greet"
  expect_line greet 'ORCHESTRATION_STATUS_COMPLETED "Hello, Tokyo!"'
  expect_filters 0
  ;;
java)
  need python3 java javac mvn
  page=java.md
  state=${arg:?usage: run.sh java WORK_DIR}
  java_project "$src" || fail "making the Maven project"
  (cd "$src" && mvn_run -o compile dependency:build-classpath -Dmdep.outputFile=cp.txt) >"$T/build.err" 2>&1 ||
    fail "mvn -o: Maven's local repository lacks something; docs.java.deps fetches it (delete $state/pom.sha256)"
  start
  run_sample greet java -cp "$src/target/classes:$(cat "$src/cp.txt")" Greet
  expect_line greet 'COMPLETED "Hello, Tokyo!"'
  expect_filters 0
  ;;
c)
  page=c.md
  bin=${arg:?usage: run.sh c BIN}
  start
  run_sample greet "$bin"
  expect_line greet 'COMPLETED "Hello, Tokyo!"'
  expect_filters 1
  ;;
*)
  fail "unknown language '$lang'"
  ;;
esac
stop_server
echo "PASS"
