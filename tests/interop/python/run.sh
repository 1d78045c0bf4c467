#!/usr/bin/env bash
# Runs the Python SDK interop tests.
# usage: run.sh VENV_DIR [extra pytest args...]
#   VENV_DIR  virtualenv to create or reuse (e.g. <build>/interop-venv); requirements.txt is
#             installed into it once, and again only when requirements.txt changes.
# Needs python3 with the venv module (Debian: apt-get install python3-venv).
# TASKHUBD_BIN must point at the taskhubd binary (ctest sets it); without it every test is skipped.
# Exit status: pytest's.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../support/venv.sh
. "$here/../../support/venv.sh"
th_suite "$here/requirements.txt" "$here" "$@"
