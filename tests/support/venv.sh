# Sourced by the Python suites' run.sh scripts (ops, storage, fault, interop/python, crosslang):
# th_venv VENV_DIR REQUIREMENTS creates or reuses a virtualenv and installs REQUIREMENTS into it once, and again
# only when that file changes (sha256 stamp).
# Needs python3 with the venv module (Debian: apt-get install python3-venv); $PYTHON overrides python3.
th_venv() {
  local venv=$1 req=$2
  local python=${PYTHON:-python3}
  if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -m venv "$venv"; then
      echo "'$python -m venv' failed; on Debian install python3-venv" >&2
      return 2
    fi
  fi
  local stamp="$venv/.taskhubd-requirements.sha256"
  local want have
  want=$(sha256sum "$req" | cut -d' ' -f1)
  have=$(cat "$stamp" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
  fi
}
