#!/usr/bin/env bash
# Runs the dashboard tests (API and, with "browser", headless Chromium) against real taskhubd processes.
# usage: run.sh VENV_DIR api|browser [extra pytest args...]
#   VENV_DIR  virtualenv to create or reuse (e.g. <build>/dashboard-venv); requirements.txt is installed into it
#             once, and again only when it or the SDK pins change (sha256 stamp).
# Needs python3-venv; the browser tests need Debian's chromium and chromium-driver (scripts/install-deps.sh).
# TASKHUBD_BIN must point at the taskhubd binary (ctest sets it); without it every test is skipped.
# DASHBOARD_SCREENSHOTS=DIR: where the browser tests save their screenshots (default: the pytest tmp dir).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 VENV_DIR api|browser [pytest args...]" >&2
  exit 2
fi
venv=$(realpath -m "$1")
which=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../support/venv.sh
. "$here/../support/venv.sh"
th_venv "$venv" "$here/requirements.txt" "$here/../interop/python/requirements.txt" || exit 2

# Selenium must use the system's chromedriver and never look for (or report to) anything on the network.
export SE_OFFLINE=true SE_AVOID_STATS=true
th_pytest "$venv" "$here" "$@" "$here/test_$which.py"
