#!/usr/bin/env bash
# Installs what building and testing taskhubd needs on Debian bookworm (apt). Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

pkgs=(build-essential cmake ninja-build pkg-config clang
      libgrpc-dev libprotobuf-dev protobuf-c-compiler libprotobuf-c-dev librocksdb-dev libssl-dev
      libmicrohttpd-dev libjson-c-dev valgrind libpq-dev postgresql libsodium-dev
      openssl  # the openssl CLI: the TLS tests make a throwaway CA (tests/support/make-pki.sh)
      libclang-rt-14-dev)  # libFuzzer and clang's sanitizer runtimes, for fuzz/
# Interop tests drive taskhubd with the published Python, JavaScript and Java SDKs (Java: a JDK and Maven).
command -v python3 >/dev/null || pkgs+=(python3)
python3 -m venv --help >/dev/null 2>&1 || pkgs+=(python3-venv)
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
# interop.java and the docs tests build Java with Maven (tests/interop/java, tests/docs).
command -v javac >/dev/null || pkgs+=(default-jdk-headless)
command -v mvn >/dev/null || pkgs+=(maven)
# The dashboard's browser tests drive Debian's Chromium headless through its chromedriver (tests/dashboard).
pkgs+=(chromium chromium-driver)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
