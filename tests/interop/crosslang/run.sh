#!/usr/bin/env bash
# Runs the cross-language interop test: a C SDK worker and a Python SDK worker through one taskhubd.
# usage: run.sh VENV_DIR [extra pytest args...]
#   VENV_DIR  virtualenv to create or reuse (e.g. <build>/crosslang-venv); ../python/requirements.txt (the
#             published durabletask package and its pinned dependencies) is installed into it once, and again
#             only when that file changes.
# Needs python3 with the venv module (Debian: apt-get install python3-venv).
# TASKHUBD_BIN must point at the taskhubd binary and CROSSLANG_C_WORKER at the C worker program
# (ctest sets both); without them the test is skipped.
# Exit status: pytest's.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../support/venv.sh
. "$here/../../support/venv.sh"
th_suite "$here/../python/requirements.txt" "$here" "$@"
