#!/usr/bin/env bash
# Runs the Java SDK interop tests (com.microsoft:durabletask-client as worker and client against taskhubd).
# usage: run.sh WORK_DIR M2_DIR [extra mvn args...]
#   WORK_DIR  scratch dir under the build tree (e.g. <build>/interop-java): Maven's target dir, the servers' data
#             dirs (tmp/) and one server log per test class (logs/<class>.taskhubd.log, kept after the run);
#             nothing is written into the source tree.
#   M2_DIR    Maven's local repository (e.g. <build>/java-m2): the SDK and its dependencies are downloaded there
#             on the first run and reused after.
# TASKHUBD_BIN must point at the taskhubd binary (ctest sets it); without it every test is skipped.
# Needs a JDK (17 or later) and Maven (Debian: default-jdk-headless, maven; scripts/install-deps.sh installs them).
# Exit status: Maven's.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 WORK_DIR M2_DIR [mvn args...]" >&2
  exit 2
fi
work=$1
m2=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
for tool in java mvn; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "run.sh: '$tool' not found; on Debian install default-jdk-headless and maven (scripts/install-deps.sh)" >&2
    exit 2
  fi
done

mkdir -p "$work" "$m2"
work=$(cd "$work" && pwd)
m2=$(cd "$m2" && pwd)
rm -rf "$work/tmp" "$work/logs"
mkdir -p "$work/tmp" "$work/logs"
export TASKHUBD_WORK_DIR="$work/tmp"
export TASKHUBD_LOG_DIR="$work/logs"

cd "$here"
# -q -B: errors and test failures only, no progress bars or colour
exec mvn -q -B -Dstyle.color=never -f "$here/pom.xml" \
  -Dmaven.repo.local="$m2" -Dth.build.dir="$work/target" \
  "$@" test
