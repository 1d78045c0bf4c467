# Sourced by the Python suites' run.sh scripts (ops, storage, fault, dashboard, interop/python, crosslang):
# th_venv VENV_DIR REQUIREMENTS [FILE...] creates or reuses a virtualenv and installs REQUIREMENTS into it once, and
# again only when it or one of the FILEs (requirements it includes with -r) changes (sha256 stamp).
# Needs python3 with the venv module (Debian: apt-get install python3-venv); $PYTHON overrides python3.
th_venv() {
  local venv req=$2
  venv=$(realpath -m "$1") # pip runs from the requirements' folder
  shift 2
  local python=${PYTHON:-python3}
  if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -m venv "$venv"; then
      echo "'$python -m venv' failed; on Debian install python3-venv" >&2
      return 2
    fi
  fi
  local stamp="$venv/.taskhubd-requirements.sha256"
  local want have
  want=$(cat "$req" "$@" | sha256sum | cut -d' ' -f1)
  have=$(cat "$stamp" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    # From the file's folder: the -r lines inside it name files relative to it.
    (cd "$(dirname "$req")" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$(basename "$req")")
    echo "$want" > "$stamp"
  fi
}

# th_pytest VENV_DIR DIR [pytest args...]: pytest from VENV_DIR in DIR, writing no bytecode or .pytest_cache into the
# source tree. Replaces the shell; exits with pytest's status.
th_pytest() {
  local venv=$1 dir=$2
  shift 2
  cd "$dir"
  export PYTHONDONTWRITEBYTECODE=1
  exec "$venv/bin/python" -m pytest -v -p no:cacheprovider "$@"
}

# th_suite REQUIREMENTS DIR VENV_DIR [pytest args...]: all of a suite's run.sh: its virtualenv (th_venv), then every
# test of DIR (th_pytest). A missing VENV_DIR, or a virtualenv that cannot be made, exits 2.
th_suite() {
  local req=$1 dir=$2
  shift 2
  if [ $# -lt 1 ]; then
    echo "usage: $0 VENV_DIR [pytest args...]" >&2
    exit 2
  fi
  local venv
  venv=$(realpath -m "$1")
  shift
  th_venv "$venv" "$req" || exit 2
  th_pytest "$venv" "$dir" "$@" "$dir"
}
