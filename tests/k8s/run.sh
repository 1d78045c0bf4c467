#!/usr/bin/env bash
# Chart and pod tests (ctest -L k8s). Usage: tests/k8s/run.sh helm|pod BUILD_DIR
#   helm: builds helm from its Go module into BUILD_DIR/k8s/bin (once), installs kubernetes-models with npm into
#         BUILD_DIR/k8s (once), then `helm lint` + `helm template` for each value set in tests/k8s/values/ and
#         validates every rendered manifest offline against the Kubernetes schemas; the RocksDB renders must equal
#         tests/k8s/golden/ byte for byte, the PostgreSQL renders pass `k8s.mjs check-postgres`. Rendered output is left in BUILD_DIR/k8s/rendered/ (never committed).
#   pod:  builds the images (scripts/build-image.sh), renders the chart with tests/k8s/values/pod.yaml, converts
#         the StatefulSet to a Pod on a podman volume, `podman kube play --network=none`: the sample app container
#         runs the chaining orchestration through 127.0.0.1:4001; kube down; play again on the same volume and
#         assert the first instance's result is still there (taskhubctl show in the taskhubd container).
# Exit 77 (CTest skip) when a prerequisite is missing and cannot be installed (no Go, no npm, not root for podman).
set -euo pipefail
MODE=${1:?usage: run.sh helm|pod BUILD_DIR}
BUILD=$(realpath -m "${2:?usage: run.sh helm|pod BUILD_DIR}")
SRC=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$SRC/tests/k8s"
WORK="$BUILD/k8s"
HELM_VERSION=${HELM_VERSION:-v3.16.4}
HELM="$WORK/bin/helm"
mkdir -p "$WORK/bin"
T0=$(date +%s)
step() { echo "[k8s $MODE +$(( $(date +%s) - T0 ))s] $*"; }

ensure_helm() {
  # (a helm built by go install reports only its minor version, so a stamp file records which one this is)
  if [ -x "$HELM" ] && [ "$(cat "$HELM.version" 2>/dev/null)" = "$HELM_VERSION" ]; then return; fi
  command -v go >/dev/null || { echo "SKIP: no go toolchain to build helm"; exit 77; }
  step "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION (first run only)"
  local t=$(date +%s)
  GOBIN="$WORK/bin" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$HELM.version"
  step "helm built in $(( $(date +%s) - t ))s: $("$HELM" version --short)"
}

ensure_npm() {
  cp "$HERE/k8s.mjs" "$WORK/k8s.mjs"
  if [ -f "$WORK/node_modules/.package-lock.json" ] && cmp -s "$HERE/package.json" "$WORK/package.json"; then return; fi
  command -v npm >/dev/null || { echo "SKIP: no npm for kubernetes-models"; exit 77; }
  step "npm install kubernetes-models (first run only)"
  cp "$HERE/package.json" "$WORK/package.json"
  (cd "$WORK" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
}

render() { # render NAME VALUESFILE -> $WORK/rendered/NAME.yaml
  "$HELM" template th "$SRC/charts/taskhubd" --namespace taskhubd-test -f "$2" > "$WORK/rendered/$1.yaml"
}

run_helm() {
  ensure_helm
  ensure_npm
  rm -rf "$WORK/rendered" && mkdir -p "$WORK/rendered"
  local sets=(default classic metrics)
  for s in "${sets[@]}"; do
    local vf="$HERE/values/$s.yaml"
    step "helm lint --strict ($s)"
    "$HELM" lint --strict "$SRC/charts/taskhubd" -f "$vf" | sed 's/^/    /'
    step "helm template ($s)"
    render "$s" "$vf"
    grep -E '^kind:' "$WORK/rendered/$s.yaml" | sort | uniq -c | sed 's/^/    /'
  done
  # The RocksDB renders are pinned: tests/k8s/golden/ holds them byte for byte, so a change meant for another mode
  # cannot alter them unnoticed. After an intended change: UPDATE_GOLDEN=1 run.sh helm BUILD_DIR, and review the diff.
  for s in "${sets[@]}"; do
    if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then cp "$WORK/rendered/$s.yaml" "$HERE/golden/$s.yaml"; continue; fi
    diff -u "$HERE/golden/$s.yaml" "$WORK/rendered/$s.yaml" ||
      { echo "FAIL: the $s render differs from tests/k8s/golden/$s.yaml (UPDATE_GOLDEN=1 if intended)"; exit 1; }
  done
  step "RocksDB renders identical to tests/k8s/golden/ (${sets[*]})"
  # The PostgreSQL mode (store.postgres.enabled): a Deployment sharing one task hub, no volume, the store and the
  # password from a Secret, the replica id from the pod name, a PodDisruptionBudget.
  local pgsets=(postgres postgres-custom)
  for s in "${pgsets[@]}"; do
    step "helm lint --strict ($s)"
    "$HELM" lint --strict "$SRC/charts/taskhubd" -f "$HERE/values/$s.yaml" | sed 's/^/    /'
    step "helm template ($s)"
    render "$s" "$HERE/values/$s.yaml"
    grep -E '^kind:' "$WORK/rendered/$s.yaml" | sort | uniq -c | sed 's/^/    /'
  done
  "$HELM" template th "$SRC/charts/taskhubd" --namespace taskhubd-test -f "$HERE/values/postgres.yaml" \
    --set store.postgres.podDisruptionBudget.enabled=false --set replicas=2 > "$WORK/rendered/postgres-nopdb.yaml"
  pgcheck() { # pgcheck NAME EXPECT
    step "check-postgres $1"
    (cd "$WORK" && node k8s.mjs check-postgres "rendered/$1.yaml" "$2") | sed 's/^/    /'
    test "${PIPESTATUS[0]}" = 0 || { echo "FAIL: the $1 render"; exit 1; }
  }
  pgcheck postgres '{"replicas":3,"secret":"th-db","uriKey":"uri","passwordKey":"password","lease":15,"pdb":1}'
  pgcheck postgres-custom '{"replicas":5,"secret":"orders-pg","uriKey":"conninfo","passwordKey":"","lease":30,"pdb":"25%"}'
  pgcheck postgres-nopdb '{"replicas":2,"secret":"th-db","uriKey":"uri","passwordKey":"password","lease":15,"pdb":null}'
  grep -q 'kind: ServiceMonitor' "$WORK/rendered/postgres-custom.yaml"
  # PostgreSQL mode refuses to render without its Secret, without the ops port (/readyz), with a bad PDB value.
  refuse() { # refuse WHAT ARGS...
    if "$HELM" template th "$SRC/charts/taskhubd" --set store.postgres.enabled=true "${@:2}" >/dev/null 2>&1; then
      echo "FAIL: rendered $1"; exit 1; fi
  }
  refuse "store.postgres.enabled without existingSecret"
  refuse "store.postgres.enabled with taskhubd.ops.enabled=false" --set store.postgres.existingSecret=db --set taskhubd.ops.enabled=false
  refuse "podDisruptionBudget.maxUnavailable=half" --set store.postgres.existingSecret=db --set store.postgres.podDisruptionBudget.maxUnavailable=half
  refuse "partitionLease=0" --set store.postgres.existingSecret=db --set store.postgres.partitionLease=0
  refuse "a grace period not above drainGrace" --set store.postgres.existingSecret=db --set terminationGracePeriodSeconds=30
  # What each value set must produce.
  grep -q 'restartPolicy: Always' "$WORK/rendered/default.yaml"    # native sidecar
  ! grep -q 'initContainers' "$WORK/rendered/classic.yaml"          # classic: taskhubd among containers
  grep -q 'kind: ServiceMonitor' "$WORK/rendered/metrics.yaml"
  ! grep -q 'kind: ServiceMonitor' "$WORK/rendered/default.yaml"
  grep -q 'readOnlyRootFilesystem: true' "$WORK/rendered/default.yaml"
  grep -q -- '--listen=127.0.0.1:4001' "$WORK/rendered/default.yaml"
  # The chart refuses a grace period that would cut a drain short, and a value outside the schema.
  if "$HELM" template th "$SRC/charts/taskhubd" --set terminationGracePeriodSeconds=10 >/dev/null 2>&1; then
    echo "FAIL: terminationGracePeriodSeconds <= drainGrace rendered"; exit 1; fi
  if "$HELM" template th "$SRC/charts/taskhubd" --set sidecarMode=sideways >/dev/null 2>&1; then
    echo "FAIL: sidecarMode=sideways passed the schema"; exit 1; fi
  step "validate against the Kubernetes schemas (kubernetes-models)"
  (cd "$WORK" && node k8s.mjs validate rendered/default.yaml rendered/classic.yaml rendered/metrics.yaml \
     rendered/postgres.yaml rendered/postgres-custom.yaml rendered/postgres-nopdb.yaml) | sed 's/^/    /'
  test "${PIPESTATUS[0]}" = 0
  step "PASS"
}

run_pod() {
  [ "$(id -u)" = 0 ] || { echo "SKIP: podman kube play needs root here (docs/kubernetes.md)"; exit 77; }
  ensure_helm
  ensure_npm
  step "build images (scripts/build-image.sh)"
  export CONTAINERS_CONF
  CONTAINERS_CONF=$(bash "$SRC/scripts/build-image.sh" --print-conf)
  bash "$SRC/scripts/build-image.sh" 2>&1 | grep -E '^build-image:|^runtime packages:|^Error|error:' | sed 's/^/    /'
  test "${PIPESTATUS[0]}" = 0
  podman image inspect --format '    image {{.RepoTags}} {{.Size}} bytes, user {{.Config.User}}' localhost/taskhubd:dev

  mkdir -p "$WORK/rendered"
  render pod "$HERE/values/pod.yaml"
  (cd "$WORK" && node k8s.mjs to-pod rendered/pod.yaml taskhubd-k8s-test-data) > "$WORK/rendered/pod-play.yaml"
  POD=th-taskhubd-0 VOL=taskhubd-k8s-test-data
  cleanup() { podman kube down "$WORK/rendered/pod-play.yaml" >/dev/null 2>&1 || true
              podman pod rm -f "$POD" >/dev/null 2>&1 || true
              [ "${KEEP_VOLUME:-0}" = 1 ] || podman volume rm -f "$VOL" >/dev/null 2>&1 || true; }
  cleanup
  trap cleanup EXIT
  podman volume create "$VOL" >/dev/null
  # fsGroup is not applied by kube play: give the volume to the image's user, as fsGroup would.
  chown 10001:10001 "$(podman volume inspect --format '{{.Mountpoint}}' "$VOL")"

  play_once() { # play_once N: play, wait for the app container, print its log, leave the pod running
    step "podman kube play --network=none (run $1)"
    podman kube play --network=none "$WORK/rendered/pod-play.yaml" | sed 's/^/    /'
    local rc
    rc=$(timeout 120 podman wait "$POD-app") || { echo "FAIL: app container did not finish"; podman logs "$POD-taskhubd" | tail -20; exit 1; }
    podman logs "$POD-app" > "$WORK/app-run$1.log" 2>&1
    sed 's/^/    app: /' "$WORK/app-run$1.log"
    [ "$rc" = 0 ] || { echo "FAIL: sample exited $rc"; podman logs "$POD-taskhubd" | tail -20; exit 1; }
  }

  play_once 1
  local id
  id=$(sed -n 's/^started publish_post as //p' "$WORK/app-run1.log")
  [ -n "$id" ] || { echo "FAIL: no instance id in the app's output"; exit 1; }
  grep -q '^status: COMPLETED' "$WORK/app-run1.log"
  # The sidecar ran as the image's user on a read-only root filesystem, its RocksDB on the volume.
  podman inspect --format '    taskhubd container: user={{.Config.User}} readonly_rootfs={{.HostConfig.ReadonlyRootfs}} caps_drop={{.HostConfig.CapDrop}}' "$POD-taskhubd"
  test "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$POD-taskhubd")" = true
  ls "$(podman volume inspect --format '{{.Mountpoint}}' "$VOL")/data" | grep -q '^CURRENT$'

  step "podman kube down (taskhubd drains on SIGTERM)"
  podman kube down "$WORK/rendered/pod-play.yaml" | sed 's/^/    /'
  podman pod exists "$POD" && { echo "FAIL: pod still there"; exit 1; }

  play_once 2
  step "the first run's instance $id after the replay on the same volume"
  local show
  show=$(podman exec "$POD-taskhubd" taskhubctl --address 127.0.0.1:4001 --output json show "$id")
  echo "$show" | head -c 600 | sed 's/^/    /'; echo
  echo "$show" | grep -q '"COMPLETED"' || { echo "FAIL: $id is not COMPLETED after the replay"; exit 1; }
  echo "$show" | grep -q 'https://blog.example.com/posts/' || { echo "FAIL: $id lost its result"; exit 1; }
  local n
  n=$(podman exec "$POD-taskhubd" taskhubctl --address 127.0.0.1:4001 --output json list | grep -o '"instanceId"' | wc -l)
  echo "    instances on the volume: $n"
  [ "$n" -ge 2 ] || { echo "FAIL: expected both runs' instances"; exit 1; }
  step "PASS"
}

case "$MODE" in
  helm) run_helm ;;
  pod) run_pod ;;
  *) echo "usage: run.sh helm|pod BUILD_DIR" >&2; exit 2 ;;
esac
