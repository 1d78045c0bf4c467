#!/usr/bin/env bash
# Builds the taskhubd container images on our machines, without any registry:
#   localhost/taskhubd:dev         (Containerfile target "taskhubd")
#   localhost/taskhubd-sample:dev  (target "sample": the same plus the C SDK samples)
# Installs podman/buildah/runc/debootstrap (and catatonit, which pods' infra container needs) with apt when missing, writes the containers.conf our machines need
# (runc, cgroupfs, low ulimits; see docs/kubernetes.md), makes the base image localhost/debian-min:bookworm with
# debootstrap from the Debian mirror when it is not there, then runs `podman build --pull=never`.
#
# Environment: TAG (default dev), CONTAINERS_CONF (default: build/containers/containers.conf, written here),
# MIRROR (default: the URIs: line of /etc/apt/sources.list.d/debian.sources), SKIP_SAMPLE=1 (taskhubd image only).
# Other scripts source the conf with: export CONTAINERS_CONF=$(bash scripts/build-image.sh --print-conf)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TAG=${TAG:-dev}
BASE=localhost/debian-min:bookworm
CONF_DEFAULT="$ROOT/build/containers/containers.conf"

write_conf() {
  mkdir -p "$(dirname "$CONF_DEFAULT")"
  cat > "$CONF_DEFAULT.tmp" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  mv "$CONF_DEFAULT.tmp" "$CONF_DEFAULT"
}

if [ "${1:-}" = "--print-conf" ]; then
  [ -f "$CONF_DEFAULT" ] || write_conf
  echo "$CONF_DEFAULT"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo --preserve-env=CONTAINERS_CONF"; fi
missing=()
for p in podman buildah runc debootstrap catatonit; do command -v "$p" >/dev/null || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-image: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -z "${CONTAINERS_CONF:-}" ]; then
  write_conf
  export CONTAINERS_CONF="$CONF_DEFAULT"
fi

if ! $SUDO podman image exists "$BASE"; then
  MIRROR=${MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
  [ -n "$MIRROR" ] || { echo "build-image: no Debian mirror: set MIRROR or configure apt's debian.sources" >&2; exit 1; }
  rootfs=$(mktemp -d /var/tmp/taskhubd-rootfs.XXXXXX)
  trap '$SUDO rm -rf "$rootfs"' EXIT
  echo "build-image: debootstrap --variant=minbase bookworm from $MIRROR" >&2
  t0=$(date +%s)
  if ! $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" > "$rootfs.log" 2>&1; then
    tail -20 "$rootfs.log" >&2
    exit 1
  fi
  rm -f "$rootfs.log"
  # debootstrap leaves the downloaded .debs and package lists behind (over 100 MB): not part of the base.
  $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*
  $SUDO tar -C "$rootfs" -c . | $SUDO podman import - "$BASE" >/dev/null
  echo "build-image: made $BASE in $(( $(date +%s) - t0 )) s" >&2
fi

t0=$(date +%s)
# The build stage is tagged too, so that pruning below keeps its cached apt layer (the compile layer above it
# changes with every source change; the untagged leftovers of earlier builds are about 1 GB each).
$SUDO podman build --pull=never --build-arg BASE="$BASE" --target build -t "localhost/taskhubd-build:$TAG" -f Containerfile . >/dev/null
$SUDO podman build --pull=never --build-arg BASE="$BASE" --target taskhubd -t "localhost/taskhubd:$TAG" -f Containerfile .
if [ "${SKIP_SAMPLE:-0}" != 1 ]; then
  $SUDO podman build --pull=never --build-arg BASE="$BASE" --target sample -t "localhost/taskhubd-sample:$TAG" -f Containerfile .
fi
$SUDO podman image prune -f >/dev/null
echo "build-image: localhost/taskhubd:$TAG$([ "${SKIP_SAMPLE:-0}" = 1 ] || echo " and localhost/taskhubd-sample:$TAG") built in $(( $(date +%s) - t0 )) s" >&2
