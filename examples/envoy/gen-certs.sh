#!/bin/sh
# Generates a development PKI for Envoy -> Vigil mutual TLS:
#
#   DIR/ca.key, DIR/ca.crt          the CA (its key stays here: mounted nowhere)
#   DIR/vigil/{tls.crt,tls.key,ca.crt}  Vigil's server certificate (SAN DNS:vigil,
#                                   DNS:vigil.vigil-system.svc[.cluster.local] for
#                                   ../kubernetes, DNS:localhost, IP:127.0.0.1) and the CA that signs
#                                   Envoy's client certificate (grpc_tls.client_ca_file)
#   DIR/envoy/{tls.crt,tls.key,ca.crt}  Envoy's client certificate and the CA that signs
#                                   Vigil's (the vigil cluster's UpstreamTlsContext)
#   DIR/secrets/fingerprint-key     the fingerprint key both Vigil replicas share (64 hex)
#   DIR/secrets/redis-password      the password of Redis' ACL user vigil (64 hex)
#
# DIR defaults to ./certs beside this script; docker-compose.yaml mounts DIR/vigil and
# DIR/secrets into the vigil replicas, DIR/secrets/redis-password into redis and DIR/envoy
# into the envoy service. Nothing here is committed
# (.gitignore): private keys never belong in a repository.
#
# For development only. The keys and secrets are readable by everyone (0644) because the containers
# run as non-root users other than yours and read them through bind mounts; in
# production, issue certificates from your own CA (cert-manager, Vault, ...) and mount
# them from a Secret readable by the service's user alone. Run it again to replace
# the CA and certificates (valid for 825 days); the secrets are kept.
set -eu

dir=${1:-$(dirname "$0")/certs}
days=825
mkdir -p "$dir/vigil" "$dir/envoy" "$dir/secrets"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days "$days" \
  -subj "/CN=Vigil example dev CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
chmod 600 "$dir/ca.key"

# issue NAME CN EXTENSIONS: a P-256 key and a certificate signed by the CA.
issue() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$dir/$1/tls.key" -out "$tmp/$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -sha256 -days "$days" -extfile "$tmp/$1.ext" -out "$dir/$1/tls.crt" 2>/dev/null
  cp "$dir/ca.crt" "$dir/$1/ca.crt"
  chmod 644 "$dir/$1/tls.key" "$dir/$1/tls.crt" "$dir/$1/ca.crt"
}

issue vigil vigil "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:vigil,DNS:vigil.vigil-system.svc,DNS:vigil.vigil-system.svc.cluster.local,DNS:localhost,IP:127.0.0.1"

issue envoy envoy "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=DNS:envoy"

# The shared secrets: kept when they exist (a new fingerprint key would make every
# replica refuse to start against a Redis that holds the old key's check value).
for f in fingerprint-key redis-password; do
  [ -s "$dir/secrets/$f" ] || openssl rand -hex 32 > "$dir/secrets/$f"
  chmod 644 "$dir/secrets/$f"
done

echo "wrote $dir: ca.crt, ca.key (keep), vigil/{tls.crt,tls.key,ca.crt}, envoy/{tls.crt,tls.key,ca.crt}, secrets/{fingerprint-key,redis-password}"
