#!/bin/sh
# Makes the sandbox provider's private test CA and its server certificate in DIR, once.
# DIR/ca.pem is what fbconnect trusts (FBCONNECT_CA_FILE); never trust it system-wide.
set -eu
dir=${1:?usage: sandbox-ca.sh DIR}
mkdir -p "$dir"
[ -s "$dir/ca.pem" ] && [ -s "$dir/sandbox.pem" ] && [ -s "$dir/sandbox.key" ] && exit 0
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=fbconnect sandbox test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$dir/sandbox.key" -out "$dir/sandbox.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    > "$dir/sandbox.ext"
openssl x509 -req -in "$dir/sandbox.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -extfile "$dir/sandbox.ext" -out "$dir/sandbox.pem" 2>/dev/null
rm -f "$dir/sandbox.csr" "$dir/sandbox.ext"
chmod 644 "$dir/ca.pem" "$dir/sandbox.pem"
