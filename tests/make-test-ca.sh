#!/bin/sh
# Makes a throwaway CA and a server certificate for 127.0.0.1 and localhost
# (EC P-256), for tests that run fakeup or smsgw over HTTPS.
#
# usage: make-test-ca.sh DIR
# writes DIR/ca.pem, DIR/ca.key, DIR/server.pem, DIR/server.key; clients
# trust DIR/ca.pem (curl --cacert DIR/ca.pem).
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"
umask 077

ext="$dir/server.ext.$$"
csr="$dir/server.csr.$$"
trap 'rm -f "$ext" "$csr"' EXIT

openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key" 2>/dev/null
openssl req -new -x509 -sha256 -days 3650 -key "$dir/ca.key" \
	-subj "/CN=smsgw test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$dir/ca.pem"

openssl ecparam -name prime256v1 -genkey -noout -out "$dir/server.key" \
	2>/dev/null
openssl req -new -sha256 -key "$dir/server.key" -subj "/CN=127.0.0.1" \
	-out "$csr"
cat >"$ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EOF
openssl x509 -req -sha256 -days 3650 -in "$csr" -CA "$dir/ca.pem" \
	-CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
	-extfile "$ext" -out "$dir/server.pem" 2>/dev/null

chmod 644 "$dir/ca.pem" "$dir/server.pem"
