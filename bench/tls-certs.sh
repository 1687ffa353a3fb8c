#!/usr/bin/env bash
# Makes the TLS files of the TLS benchmarks in bench/tls/ unless they are there: a CA of the
# benchmark's own (ca.pem) and a certificate for localhost and 127.0.0.1 it signed
# (server.pem, server.key), for the nginx TLS mock. Made here, never committed: the keys are
# for this machine's loopback only. Needs openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=bench/tls
[ -s "$dir/ca.pem" ] && [ -s "$dir/server.pem" ] && [ -s "$dir/server.key" ] && exit 0
command -v openssl >/dev/null || { echo "openssl not found: apt-get install openssl" >&2; exit 1; }
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=flowgate bench CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' > "$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 3650 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
echo "made $dir/ca.pem, $dir/server.pem, $dir/server.key"
