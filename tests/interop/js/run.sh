#!/usr/bin/env bash
# Runs the durabletask-js interop tests.
#   run.sh WORKDIR     WORKDIR: a directory under the build tree (CTest passes <build>/interop-js).
# Installs the pinned packages (package.json + package-lock.json of this directory) into WORKDIR with
# `npm ci` (skipped when WORKDIR already holds an install of the same lock file), then runs
# `node --test` on this directory's *.test.js with NODE_PATH=WORKDIR/node_modules, so the source tree
# never gets a node_modules. Env: TASKHUBD_BIN (unset -> the tests report themselves skipped).
# Exit status: the test runner's (or npm's, if the install fails).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${1:?usage: run.sh WORKDIR}"

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "run.sh: '$tool' not found in PATH" >&2; exit 1; }
done

mkdir -p "$work"
work="$(cd "$work" && pwd)"
case "$work/" in
  "$here"/*) echo "run.sh: WORKDIR must be outside the source directory $here" >&2; exit 1 ;;
esac

stamp="$work/.installed-lock"
if [[ -d "$work/node_modules" && -f "$stamp" ]] && cmp -s "$stamp" "$here/package-lock.json" \
   && cmp -s "$work/package.json" "$here/package.json"; then
  echo "run.sh: packages already installed in $work"
else
  rm -f "$stamp"
  cp "$here/package.json" "$here/package-lock.json" "$work/"
  echo "run.sh: npm ci in $work"
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$here/package-lock.json" "$stamp"
fi

export NODE_PATH="$work/node_modules${NODE_PATH:+:$NODE_PATH}"
if [[ -z "${TASKHUBD_BIN:-}" ]]; then
  echo "run.sh: TASKHUBD_BIN is not set; the tests will be skipped" >&2
fi

cd "$here"
shopt -s nullglob
tests=("$here"/*.test.js)
(( ${#tests[@]} )) || { echo "run.sh: no *.test.js in $here" >&2; exit 1; }
status=0
node --test "${tests[@]}" || status=$?
exit "$status"
