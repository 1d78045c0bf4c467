#!/usr/bin/env bash
# Runs the crash-consistency harness (chaos.py) in a virtualenv with the published Python SDK's generated gRPC code.
# usage: chaos.sh VENV_DIR [chaos.py flags...]
#   VENV_DIR  virtualenv to create or reuse (e.g. <build>/chaos-venv), set up as run.sh does (../support/venv.sh)
# TASKHUBD_BIN and CHAOS_WORKER_BIN name the binaries (ctest sets both); CHAOS_SEED, CHAOS_ORCHESTRATIONS,
# CHAOS_KILLS and CHAOS_WORKER_KILLS the defaults of --seed, --orchestrations, --kills and --worker-kills.
# Exit status: chaos.py's (0 only when nothing was lost, wrong, duplicated or stuck).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 VENV_DIR [chaos.py flags...]" >&2
  exit 2
fi
venv=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../support/venv.sh
. "$here/../support/venv.sh"
th_venv "$venv" "$here/../interop/python/requirements.txt" || exit 2
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -u "$here/chaos.py" "$@"
