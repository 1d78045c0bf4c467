#!/usr/bin/env bash
# Runs the operations tests (metrics, health/readiness, drain, trace context, JSON logs) with the
# published Python SDK as worker and client.
# usage: run.sh VENV_DIR [extra pytest args...]
#   VENV_DIR  virtualenv to create or reuse (e.g. <build>/ops-venv); ../interop/python/requirements.txt
#             is installed into it once, and again only when that file changes (sha256 stamp).
# Needs python3 with the venv module (Debian: apt-get install python3-venv).
# TASKHUBD_BIN must point at the taskhubd binary (ctest sets it); without it every test is skipped.
# TASKHUBD_OPS_LOG_LEVEL (default debug) sets the servers' --log-level.
# Exit status: pytest's.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 VENV_DIR [pytest args...]" >&2
  exit 2
fi
venv=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
req="$here/../interop/python/requirements.txt"

# shellcheck source=../support/venv.sh
. "$here/../support/venv.sh"
th_venv "$venv" "$req" || exit 2

cd "$here"
export PYTHONDONTWRITEBYTECODE=1
# -p no:cacheprovider: do not write .pytest_cache into the source tree
exec "$venv/bin/python" -m pytest -v -p no:cacheprovider "$@" "$here"
