#!/usr/bin/env bash
# Makes a throwaway PKI for the TLS tests in DIR with the openssl CLI (keys are never committed):
#   ca.pem/ca.key          the test CA
#   server.pem/server.key  issued by it for localhost, 127.0.0.1 and ::1
#   server2.pem/server2.key  a second server certificate from the same CA (rotation)
#   client.pem/client.key  a client certificate issued by the CA (mutual TLS)
#   other-ca.pem, other-client.pem/.key  another CA and a client certificate it issued (refused)
#   self.pem/self.key      a self-signed server certificate no client trusts
# usage: make-pki.sh DIR
set -euo pipefail
d=${1:?usage: make-pki.sh DIR}
mkdir -p "$d"
cd "$d"
q() { "$@" >/dev/null 2>&1 || { echo "make-pki.sh: failed: $*" >&2; "$@"; exit 1; }; }
ca() { # name subject
  q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" \
    -days 2 -subj "/CN=$2" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # name ca cn usage san
  q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$3"
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n%s' "$4" "${5:+subjectAltName=$5}" > "$1.ext"
  q openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 -out "$1.pem" \
    -extfile "$1.ext"
  rm -f "$1.csr" "$1.ext"
}
ca ca "taskhubd test CA"
ca other-ca "another CA"
leaf server ca localhost serverAuth "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf server2 ca localhost serverAuth "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf client ca test-worker clientAuth ""
leaf other-client other-ca intruder clientAuth ""
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout self.key -out self.pem -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1
chmod 600 ./*.key
