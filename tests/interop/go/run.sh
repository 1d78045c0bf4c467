#!/usr/bin/env bash
# Runs the Go SDK interop tests (durabletask-go as worker and client against taskhubd).
# usage: run.sh WORK_DIR [extra go test args...]
#   WORK_DIR  scratch dir under the build tree (e.g. <build>/interop-go): temp files, the servers' data dirs
#             and one server log per test (WORK_DIR/logs) go there; nothing is written into the source tree.
# TASKHUBD_BIN must point at the taskhubd binary (ctest sets it); without it every test is skipped.
# Modules come from the Go module proxy into the default GOMODCACHE on first use; GOPATH/GOCACHE stay default.
# Exit status: go test's.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 WORK_DIR [go test args...]" >&2
  exit 2
fi
work=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
go=${GO:-go}
if ! command -v "$go" >/dev/null 2>&1; then
  echo "run.sh: '$go' not found; the Go toolchain (1.21 or later) is needed" >&2
  exit 2
fi

mkdir -p "$work"
work=$(cd "$work" && pwd)
rm -rf "$work/tmp" "$work/logs"
mkdir -p "$work/tmp" "$work/logs"
export TMPDIR="$work/tmp"            # go test's build temp and every t.TempDir (server data dirs)
export TASKHUBD_LOG_DIR="$work/logs" # <TestName>.taskhubd.log, kept after the run
export GOTOOLCHAIN=local             # never fetch another toolchain
export GOFLAGS="-mod=readonly -buildvcs=false"
if [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ] && [ -z "${GOCACHE:-}" ]; then
  export GOCACHE="$work/gocache"
fi
if [ -z "${HOME:-}" ] && [ -z "${GOPATH:-}" ]; then
  export GOPATH="$work/gopath"
fi

cd "$here"
exec "$go" test -v -count=1 -timeout 300s "$@" ./...
