#!/usr/bin/env bash
# Chart and pod tests (ctest -L k8s). Usage: tests/k8s/run.sh helm|pod|pod-postgres BUILD_DIR
#   helm: builds helm from its Go module into BUILD_DIR/k8s/bin (once), installs kubernetes-models with npm into
#         BUILD_DIR/k8s (once), then `helm lint` + `helm template` for each value set in tests/k8s/values/ and
#         validates every rendered manifest offline against the Kubernetes schemas; the RocksDB renders must equal
#         tests/k8s/golden/ byte for byte, the PostgreSQL renders pass `k8s.mjs check-postgres`. Rendered output
#         is left in BUILD_DIR/k8s/rendered/ (never committed).
#   pod:  builds the images (scripts/build-image.sh), renders the chart with tests/k8s/values/pod.yaml, converts
#         the StatefulSet to a Pod on a podman volume, `podman kube play --network=none`: the sample app container
#         runs the chaining orchestration through 127.0.0.1:4001; kube down; play again on the same volume and
#         assert the first instance's result is still there (taskhubctl show in the taskhubd container).
#   pod-postgres: the PostgreSQL mode's Deployment played as pods against a PostgreSQL server on this machine
#         (run_pod_postgres below). Needs root, podman and Debian's postgresql.
# K8S_REUSE_IMAGES=1 skips the image build when localhost/taskhubd:dev and -sample:dev exist (development runs).
# Exit 77 (CTest skip) when a prerequisite is missing and cannot be installed (no Go, no npm, not root for podman).
set -euo pipefail
MODE=${1:?usage: run.sh helm|pod|pod-postgres BUILD_DIR}
BUILD=$(realpath -m "${2:?usage: run.sh helm|pod|pod-postgres BUILD_DIR}")
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

# The rendered preStop scripts run for real against a taskhubd of this build (on a free port, the token file in a
# temporary directory): without and with tokens, the drain is accepted and taskhubd exits 0 before the script ends.
prestop_drains() {
  local bin="$BUILD/sidecar/taskhubd"
  [ -x "$bin" ] || { echo "FAIL: no taskhubd at $bin for the preStop check"; exit 1; }
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$tmp/auth"
  printf '# rotated weekly\n\n  first-token  \nsecond-token\n' > "$tmp/auth/tokens"
  local set
  for set in classic secured; do
    local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$HELM" template th "$SRC/charts/taskhubd" --namespace taskhubd-test -f "$HERE/values/$set.yaml" \
      --set taskhubd.ops.port="$port" --set taskhubd.auth.mountPath="$tmp/auth" > "$WORK/rendered/prestop-$set.yaml"
    (cd "$WORK" && node k8s.mjs prestop "rendered/prestop-$set.yaml") > "$tmp/prestop.sh"
    local args=(--listen 127.0.0.1:0 --ops-listen "127.0.0.1:$port" --data-dir "$tmp/data-$set" --drain-grace 2)
    [ "$set" = secured ] && args+=(--auth-token-file "$tmp/auth/tokens")
    "$bin" "${args[@]}" --ready-fd 3 3>"$tmp/ready" 2>"$tmp/log-$set" &
    local pid=$!
    local deadline=$(( $(date +%s) + 60 ))
    until [ -s "$tmp/ready" ]; do
      [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$pid" 2>/dev/null ||
        { echo "FAIL: taskhubd did not start for the preStop check"; cat "$tmp/log-$set"; exit 1; }
      sleep 0.1 # polling the ready file, with the deadline above
    done
    : > "$tmp/ready"
    step "preStop ($set): $(head -c 60 "$tmp/prestop.sh" | tr '\n' ' ')..."
    timeout 60 bash "$tmp/prestop.sh" || { echo "FAIL: the $set preStop script failed"; cat "$tmp/log-$set"; exit 1; }
    # The script ends early only once the ops port closed; a refused drain leaves taskhubd running.
    deadline=$(( $(date +%s) + 15 ))
    while kill -0 "$pid" 2>/dev/null; do
      [ "$(date +%s)" -lt "$deadline" ] ||
        { echo "FAIL: taskhubd still runs after the $set preStop"; kill "$pid"; wait "$pid"; cat "$tmp/log-$set"; exit 1; }
      sleep 0.1 # polling the process, with the deadline above
    done
    local rc=0
    wait "$pid" || rc=$?
    [ "$rc" = 0 ] || { echo "FAIL: taskhubd exited $rc after the $set preStop"; cat "$tmp/log-$set"; exit 1; }
    grep -q 'event=drain_requested via=ops' "$tmp/log-$set" ||
      { echo "FAIL: the $set preStop did not drain"; cat "$tmp/log-$set"; exit 1; }
    echo "    the $set preStop drained taskhubd; it exited 0"
  done
  rm -rf "$tmp"
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
  # Tokens from a Secret, the preStop drain with them, and the NetworkPolicy (off by default).
  step "helm lint --strict (secured)"
  "$HELM" lint --strict "$SRC/charts/taskhubd" -f "$HERE/values/secured.yaml" | sed 's/^/    /'
  render secured "$HERE/values/secured.yaml"
  (cd "$WORK" && node k8s.mjs check-secured rendered/secured.yaml) | sed 's/^/    /'
  test "${PIPESTATUS[0]}" = 0 || { echo "FAIL: the secured render"; exit 1; }
  for s in default classic metrics postgres postgres-custom; do
    ! grep -q 'kind: NetworkPolicy' "$WORK/rendered/$s.yaml" || { echo "FAIL: $s renders a NetworkPolicy"; exit 1; }
  done
  "$HELM" template th "$SRC/charts/taskhubd" --namespace taskhubd-test --set networkPolicy.enabled=true \
    > "$WORK/rendered/netpol-empty.yaml"
  grep -q '^  ingress: \[\]' "$WORK/rendered/netpol-empty.yaml" || { echo "FAIL: an empty NetworkPolicy admits something"; exit 1; }
  prestop_drains
  step "validate against the Kubernetes schemas (kubernetes-models)"
  (cd "$WORK" && node k8s.mjs validate rendered/default.yaml rendered/classic.yaml rendered/metrics.yaml \
     rendered/postgres.yaml rendered/postgres-custom.yaml rendered/postgres-nopdb.yaml rendered/secured.yaml \
     rendered/netpol-empty.yaml) | sed 's/^/    /'
  test "${PIPESTATUS[0]}" = 0
  step "PASS"
}

ensure_images() {
  export CONTAINERS_CONF
  CONTAINERS_CONF=$(bash "$SRC/scripts/build-image.sh" --print-conf)
  if [ "${K8S_REUSE_IMAGES:-0}" = 1 ] && podman image exists localhost/taskhubd:dev &&
     podman image exists localhost/taskhubd-sample:dev; then
    step "reusing the images (K8S_REUSE_IMAGES=1)"
  else
    step "build images (scripts/build-image.sh)"
    bash "$SRC/scripts/build-image.sh" 2>&1 | grep -E '^build-image:|^runtime packages:|^Error|error:' | sed 's/^/    /'
    test "${PIPESTATUS[0]}" = 0
  fi
  podman image inspect --format '    image {{.RepoTags}} {{.Size}} bytes, user {{.Config.User}}' localhost/taskhubd:dev
}

run_pod() {
  [ "$(id -u)" = 0 ] || { echo "SKIP: podman kube play needs root here (docs/kubernetes.md)"; exit 77; }
  ensure_helm
  ensure_npm
  ensure_images

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
  grep -q '"COMPLETED"' <<<"$show" || { echo "FAIL: $id is not COMPLETED after the replay"; exit 1; }
  grep -q 'https://blog.example.com/posts/' <<<"$show" || { echo "FAIL: $id lost its result"; exit 1; }
  local n
  n=$(podman exec "$POD-taskhubd" taskhubctl --address 127.0.0.1:4001 --output json list | grep -o '"instanceId"' | wc -l)
  echo "    instances on the volume: $n"
  [ "$n" -ge 2 ] || { echo "FAIL: expected both runs' instances"; exit 1; }
  step "PASS"
}

# The chart's PostgreSQL mode on real pods: a PostgreSQL server on this machine (tests/support/pg.sh) that wants a
# password on its Unix socket; the rendered Deployment played as PG_PODS pods (default 2) with --network=none, each
# reaching the server through its socket directory (a hostPath volume), the store and the password from a podman
# secret through the rendered secretKeyRefs, the replica id from the pod name. Run 1: the sample app completes its
# orchestration, the partitions are owned by the pods by name, no password is on a command line, there is no data
# volume; the pods stop (SIGTERM) and hand their partitions back at once. Run 2, new pods (new names, as a
# Deployment's would be): they take the partitions over and still see run 1's instance and its result.
# With two or more pods it also checks that they share the partitions and that each pod sees the instance the other
# started (docs/scale-out.md).
run_pod_postgres() {
  [ "$(id -u)" = 0 ] || { echo "SKIP: podman kube play needs root here (docs/kubernetes.md)"; exit 77; }
  ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || { echo "SKIP: PostgreSQL is not installed (apt-get install postgresql)"; exit 77; }
  ensure_helm
  ensure_npm
  ensure_images
  # (not local: the EXIT trap reads them after this function has returned)
  pods=${PG_PODS:-2} pgdir="$WORK/pg-pod" secret=th-k8s-pg db=taskhubd_k8s plays=()
  local pgbin; pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  local pw; pw=k8s-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  cleanup() { for f in "${plays[@]}"; do podman kube down "$f" >/dev/null 2>&1 || true; done
              podman secret rm "$secret" >/dev/null 2>&1 || true
              bash "$SRC/tests/support/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true; }
  cleanup   # what a run that died half-way left
  rm -rf "$pgdir"
  trap cleanup EXIT
  step "PostgreSQL for the pods (tests/support/pg.sh), password authentication on its socket"
  bash "$SRC/tests/support/pg.sh" start "$pgdir" >/dev/null
  local port; port=$(cat "$pgdir/port")
  bash "$SRC/tests/support/pg.sh" createdb "$pgdir" "$db" >/dev/null
  local admin="host=127.0.0.1 port=$port user=taskhubd dbname=$db"   # this script's own connection (trust on TCP)
  "$pgbin/psql" -qAt "$admin" -c "ALTER ROLE taskhubd PASSWORD '$pw'" >/dev/null
  printf 'local all all scram-sha-256\nhost all all 127.0.0.1/32 trust\n' > "$pgdir/data/pg_hba.conf"
  "$pgbin/psql" -qAt "$admin" -c "SELECT pg_reload_conf()" >/dev/null
  if PGPASSFILE=/dev/null PGPASSWORD= "$pgbin/psql" -qAt "host=$pgdir port=$port user=taskhubd dbname=$db" \
       -c 'SELECT 1' >/dev/null 2>&1; then echo "FAIL: the socket let us in without a password"; exit 1; fi
  # What `kubectl create secret generic th-k8s-pg --from-literal=uri=... --from-literal=password=...` holds; podman
  # 4.3 resolves a secretKeyRef from a podman secret whose data is a JSON map of base64 values.
  local b64uri b64pw
  b64uri=$(printf 'host=/pgsocket port=%s user=taskhubd dbname=%s' "$port" "$db" | base64 -w0)
  b64pw=$(printf '%s' "$pw" | base64 -w0)
  printf '{"uri":"%s","password":"%s"}' "$b64uri" "$b64pw" | podman secret create "$secret" - >/dev/null

  mkdir -p "$WORK/rendered"
  "$HELM" template th "$SRC/charts/taskhubd" --namespace taskhubd-test -f "$HERE/values/pod-postgres.yaml" \
    --set replicas="$pods" --set "extraVolumes[0].hostPath.path=$pgdir" > "$WORK/rendered/pod-postgres.yaml"
  grep -q '^kind: Deployment' "$WORK/rendered/pod-postgres.yaml"
  sql() { "$pgbin/psql" -qAt "$admin" -c "$1"; }

  play_run() { # play_run N: play PG_PODS pods named th-taskhubd-rN-I, wait for every app container
    local f="$WORK/rendered/pod-postgres-play$1.yaml" i
    : > "$f"
    for i in $(seq 0 $((pods - 1))); do
      [ "$i" = 0 ] || echo --- >> "$f"
      (cd "$WORK" && node k8s.mjs to-pod rendered/pod-postgres.yaml - "th-taskhubd-r$1-$i") >> "$f"
    done
    plays+=("$f")
    step "podman kube play --network=none (run $1: $pods pod(s))"
    podman kube play --network=none "$f" | sed 's/^/    /'
    for i in $(seq 0 $((pods - 1))); do
      local p="th-taskhubd-r$1-$i" rc
      rc=$(timeout 180 podman wait "$p-app") || { echo "FAIL: $p: app did not finish"; podman logs "$p-taskhubd" | tail -20; exit 1; }
      podman logs "$p-app" > "$WORK/pg-app-run$1-$i.log" 2>&1
      sed "s/^/    $p app: /" "$WORK/pg-app-run$1-$i.log"
      [ "$rc" = 0 ] || { echo "FAIL: $p: sample exited $rc"; podman logs "$p-taskhubd" | tail -20; exit 1; }
      grep -q '^status: COMPLETED' "$WORK/pg-app-run$1-$i.log"
    done
  }
  stop_run() { # stop_run N: SIGTERM every pod of run N (taskhubd drains, hands its partitions over), then remove
    local i
    step "stop run $1 (SIGTERM: drain, partitions handed over)"
    for i in $(seq 0 $((pods - 1))); do
      podman pod stop -t 15 "th-taskhubd-r$1-$i" >/dev/null
      podman logs "th-taskhubd-r$1-$i-taskhubd" > "$WORK/pg-taskhubd-run$1-$i.log" 2>&1
      grep -E 'event=(serving|shutdown_done|fenced_exit)' "$WORK/pg-taskhubd-run$1-$i.log" | sed "s/^/    r$1-$i: /"
    done
    podman kube down "$WORK/rendered/pod-postgres-play$1.yaml" >/dev/null
  }
  owners() { sql "SELECT coalesce(owner, '-') || ' ' || count(*) FROM th_partition GROUP BY owner ORDER BY 1"; }
  # Every partition owned by a pod of run N, within a few lease rounds: the pods share them out as they come up (a
  # replica over its share lets partitions go and the other takes them a round later), so a look right after the
  # apps finish may fall between the two.
  owned_by_run() {
    local deadline=$(( $(date +%s) + 30 )) bad
    while :; do
      bad=$(sql "SELECT count(*) FROM th_partition WHERE owner IS NULL OR owner NOT LIKE 'th-taskhubd-r$1-%'")
      [ "$bad" = 0 ] && return 0
      [ "$(date +%s)" -lt "$deadline" ] || { echo "FAIL: $bad partition(s) not owned by a run-$1 pod"; owners; exit 1; }
      sleep 0.2 # polling the table, with the deadline above
    done
  }

  play_run 1
  step "run 1: partitions by owner (the replica id is the pod name)"
  owned_by_run 1
  owners | sed 's/^/    /'
  local p0=th-taskhubd-r1-0
  podman inspect --format '    taskhubd container: user={{.Config.User}} readonly_rootfs={{.HostConfig.ReadonlyRootfs}} mounts={{range .Mounts}}{{.Destination}} {{end}}' "$p0-taskhubd"
  test "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$p0-taskhubd")" = true
  # No volume of the chart's but the socket directory (podman adds an anonymous one for the image's VOLUME line, as
  # some container runtimes do), and taskhubd wrote nothing on disk: the task hub is all in PostgreSQL.
  podman inspect --format '{{range .Mounts}}{{.Destination}} {{.Name}}{{"\n"}}{{end}}' "$p0-taskhubd" |
    grep -v -E '^/pgsocket |^/var/lib/taskhubd [0-9a-f]{64}$' | grep . && { echo "FAIL: unexpected mounts"; exit 1; }
  local written
  written=$(podman exec "$p0-taskhubd" find /var/lib/taskhubd -mindepth 1 | head -5)
  [ -z "$written" ] || { echo "FAIL: taskhubd wrote files: $written"; exit 1; }
  podman inspect --format '{{json .Config.Env}}' "$p0-taskhubd" | grep -q "\"TASKHUBD_REPLICA_ID=$p0\"" ||
    { echo "FAIL: TASKHUBD_REPLICA_ID is not the pod name"; exit 1; }
  podman exec "$p0-taskhubd" cat /proc/1/cmdline | tr '\0' ' ' | sed 's/^/    taskhubd command line: /'; echo
  if podman exec "$p0-taskhubd" cat /proc/1/cmdline | grep -qa -- "$pw"; then echo "FAIL: the password is on the command line"; exit 1; fi
  local id
  id=$(sed -n 's/^started publish_post as //p' "$WORK/pg-app-run1-0.log")
  [ -n "$id" ] || { echo "FAIL: no instance id in the app's output"; exit 1; }
  if [ "$pods" -ge 2 ]; then
    step "run 1: pod 1 sees the instance pod 0 started ($id)"
    local show1
    show1=$(podman exec th-taskhubd-r1-1-taskhubd taskhubctl --address 127.0.0.1:4001 --output json show "$id" 2>&1 || true)
    # A here-string, not `echo | grep -q`: under pipefail, grep -q ending at the first match can leave echo a
    # SIGPIPE on a long output, and the pipeline then fails although the text matched.
    grep -q '"COMPLETED"' <<<"$show1" || {
      echo "FAIL: pod 1 does not see $id as COMPLETED:"; echo "$show1" | head -c 800; echo
      podman logs th-taskhubd-r1-1-taskhubd 2>&1 | tail -40; exit 1; }
  fi
  stop_run 1
  local held
  held=$(sql "SELECT count(*) FROM th_partition WHERE owner LIKE 'th-taskhubd-r1-%' AND lease_until > now()")
  [ "$held" = 0 ] || { echo "FAIL: $held partition(s) still leased to stopped run-1 pods"; owners; exit 1; }
  echo "    no partition leased to a stopped pod"

  play_run 2
  step "run 2: partitions by owner"
  owned_by_run 2
  owners | sed 's/^/    /'
  step "run 1's instance $id from a run-2 pod"
  local show
  show=$(podman exec th-taskhubd-r2-0-taskhubd taskhubctl --address 127.0.0.1:4001 --output json show "$id")
  echo "$show" | head -c 600 | sed 's/^/    /'; echo
  grep -q '"COMPLETED"' <<<"$show" || { echo "FAIL: $id is not COMPLETED in run 2"; exit 1; }
  grep -q 'https://blog.example.com/posts/' <<<"$show" || { echo "FAIL: $id lost its result"; exit 1; }
  stop_run 2
  step "PASS"
}

case "$MODE" in
  helm) run_helm ;;
  pod) run_pod ;;
  pod-postgres) run_pod_postgres ;;
  *) echo "usage: run.sh helm|pod|pod-postgres BUILD_DIR" >&2; exit 2 ;;
esac
