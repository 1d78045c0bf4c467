#!/usr/bin/env bash
# Installs dependencies, builds taskhubd and runs it on 127.0.0.1:4001 with its state in ./taskhubd-data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target taskhubd
exec build/sidecar/taskhubd --listen "${TASKHUBD_LISTEN:-127.0.0.1:4001}" --data-dir "${TASKHUBD_DATA_DIR:-taskhubd-data}" "$@"
