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

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../support/venv.sh
. "$here/../support/venv.sh"
th_suite "$here/../interop/python/requirements.txt" "$here" "$@"
