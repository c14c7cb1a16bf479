#!/bin/sh
# Entry point of the simulator image (docker/sim.Dockerfile).
#
#   sim-entrypoint              make the test PKI if needed, then run sim.py
#   sim-entrypoint --pki-only   only make the test PKI (used by the tests)
#
# Environment (defaults set in the image):
#   SIM_PKI_DIR    where the PKI goes: ca.pem and server.pem readable by
#                  all (recgate mounts this directory to trust ca.pem),
#                  the keys in private/ (mode 0700)
#   SIM_HOSTNAME   the server certificate's host name (default: sim, the
#                  compose service name recgate connects to)
#   SIM_FIXTURES   records JSON served by the simulator
#   SIM_AK_FILE, SIM_SK_FILE   files holding the AK and SK it accepts (the
#                  same compose secrets recgate signs with)
#   SIM_PORT       port on 0.0.0.0 (default 8443)
#   SIM_SCRIPT     path of sim.py (default /opt/sim/sim.py)
#
# The CA is made once and kept in the volume, so a restarted simulator
# does not invalidate the CA that running gateways have loaded; only a
# server certificate that is missing or expires within a day is made anew.
set -eu

pki=${SIM_PKI_DIR:-/pki}
host=${SIM_HOSTNAME:-sim}

say() {
    echo "sim-entrypoint: $*" >&2
}

# Writes a file into $pki atomically: made in a temporary directory on the
# same file system, then renamed, so a reader never sees half a PEM file.
make_pki() {
    umask 077
    mkdir -p "$pki/private"
    chmod 0755 "$pki"
    chmod 0700 "$pki/private"
    tmp=$(mktemp -d "$pki/.new.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT

    if [ ! -s "$pki/private/ca.key" ] || [ ! -s "$pki/ca.pem" ]; then
        say "making a test CA in $pki"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 3650 \
            -subj "/CN=recgate demo CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign"
        chmod 0644 "$tmp/ca.pem"
        mv "$tmp/ca.key" "$pki/private/ca.key"
        mv "$tmp/ca.pem" "$pki/ca.pem"
        rm -f "$pki/server.pem"
    fi

    if [ ! -s "$pki/server.pem" ] || [ ! -s "$pki/private/server.key" ] \
        || ! openssl x509 -checkend 86400 -noout -in "$pki/server.pem" \
            >/dev/null 2>&1; then
        say "making a certificate for $host signed by the test CA"
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -nodes -keyout "$tmp/server.key" -out "$tmp/server.csr" \
            -subj "/CN=$host"
        cat >"$tmp/server.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$host
EOF
        openssl x509 -req -in "$tmp/server.csr" -CA "$pki/ca.pem" \
            -CAkey "$pki/private/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
            -days 825 -sha256 -extfile "$tmp/server.ext" \
            -out "$tmp/server.pem"
        chmod 0644 "$tmp/server.pem"
        mv "$tmp/server.key" "$pki/private/server.key"
        mv "$tmp/server.pem" "$pki/server.pem"
    fi

    rm -rf "$tmp"
    trap - EXIT
    umask 022
}

first_line() {
    if [ ! -r "$1" ]; then
        say "cannot read $1"
        exit 1
    fi
    head -n 1 "$1" | tr -d '\r\n'
}

mkdir -p "$pki" 2>/dev/null || true
if [ ! -d "$pki" ] || [ ! -w "$pki" ]; then
    say "$pki is not a directory writable by uid $(id -u)"
    exit 1
fi
make_pki

if [ "${1:-}" = "--pki-only" ]; then
    exit 0
fi

ak=$(first_line "${SIM_AK_FILE:-/run/secrets/recgate_ak}")
sk=$(first_line "${SIM_SK_FILE:-/run/secrets/recgate_sk}")

exec python3 "${SIM_SCRIPT:-/opt/sim/sim.py}" \
    --cert "$pki/server.pem" --key "$pki/private/server.key" \
    --fixtures "${SIM_FIXTURES:-/opt/sim/fixtures.json}" \
    --ak "$ak" --sk "$sk" --host 0.0.0.0 --port "${SIM_PORT:-8443}"
