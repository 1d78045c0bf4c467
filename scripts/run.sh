#!/usr/bin/env bash
# Installs dependencies, builds taskhubd and runs it on 127.0.0.1:4001 with its state in ./taskhubd-data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target taskhubd taskhubctl
listen="${TASKHUBD_LISTEN:-127.0.0.1:4001}"
# taskhubd listens on TASKHUBD_LISTEN; its clients (taskhubctl, the C samples, the C SDK) find it through
# TASKHUBD_ADDRESS. Say the line that joins them, so nobody's client talks to whatever else holds 4001.
cat >&2 <<EOT
taskhubd will serve on $listen (ops port: ${TASKHUBD_OPS_LISTEN:-127.0.0.1:9464}). In another shell:
  export TASKHUBD_ADDRESS=$listen PATH="$PWD/build/taskhubctl:\$PATH"
  taskhubctl list
EOT
exec build/sidecar/taskhubd --listen "$listen" --data-dir "${TASKHUBD_DATA_DIR:-taskhubd-data}" "$@"
