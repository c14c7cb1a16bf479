#!/usr/bin/env bash
# Checks the container deployment in docker/ without a Docker engine:
#   - docker-compose (1.29, Debian 12) parses docker/compose.yml with the
#     demo defaults, with --profile demo and with production.env.example,
#     and "docker compose" (v2) too where it is installed;
#   - the services are wired as docker/README.md says (replicas, ports,
#     read-only root file systems, secrets, the demo profile);
#   - the Dockerfile builds with scripts/deps.sh and scripts/build.sh, runs
#     as a non-root user, has a HEALTHCHECK, and its runtime packages exist
#     in apt and cover every library the built binary links;
#   - the simulator's start script makes a certificate that verifies for
#     the host name "sim";
#   - haproxy.cfg routes to recgate:8080 (and parses, where haproxy is
#     installed).
# One line per check, then "N passed, N failed"; exits 1 on any failure.
#
#   bash tests/deploy/test_compose.sh
# RECGATE_BIN names the built binary (ctest sets it; else build/recgate).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
docker_dir=$root/docker
compose_file=$docker_dir/compose.yml
checks=$here/deploy_checks.py

passed=0
failed=0
work=$(mktemp -d "${TMPDIR:-/tmp}/recgate-deploy.XXXXXX")
trap 'rm -rf "$work"' EXIT

pass() {
    echo "ok   $1"
    passed=$((passed + 1))
}

fail() {
    echo "FAIL $1${2:+: $2}"
    failed=$((failed + 1))
}

note() {
    echo "note $1"
}

# check WHAT COMMAND...: one line; on failure the command's output follows,
# indented.
check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass "$what"
    else
        fail "$what"
        printf '%s\n' "$out" | sed -n '1,20s/^/     | /p'
    fi
}

# Counts the ok/FAIL lines deploy_checks.py prints.
tally() {
    local line
    while IFS= read -r line; do
        echo "$line"
        case $line in
            "ok "*) passed=$((passed + 1)) ;;
            "FAIL "*) failed=$((failed + 1)) ;;
        esac
    done
}

# Compose with only PATH and HOME from the caller's environment, so that a
# developer's RECGATE_* variables do not change what is checked. An empty
# env file keeps a docker/.env (an operator's settings) out of it as well.
: >"$work/empty.env"
compose() {
    env -i PATH="$PATH" HOME="${HOME:-/root}" "$@"
}

# --- compose files -------------------------------------------------------

if command -v docker-compose >/dev/null 2>&1; then
    v1=(docker-compose -f "$compose_file")
    check "docker-compose config: demo defaults" \
        compose "${v1[@]}" --env-file "$work/empty.env" config -q
    check "docker-compose config: --profile demo" \
        compose "${v1[@]}" --env-file "$work/empty.env" --profile demo \
        config -q
    check "docker-compose config: production.env.example" \
        compose "${v1[@]}" --env-file "$docker_dir/production.env.example" \
        config -q

    if compose "${v1[@]}" --env-file "$work/empty.env" --profile demo \
            config >"$work/demo.yml" 2>"$work/demo.err"; then
        tally < <(python3 "$checks" compose "$root" demo "$work/demo.yml")
    else
        fail "docker-compose config (demo) for inspection" \
            "$(head -n 5 "$work/demo.err")"
    fi
    if compose "${v1[@]}" --env-file "$docker_dir/production.env.example" \
            config >"$work/prod.yml" 2>"$work/prod.err"; then
        tally < <(python3 "$checks" compose "$root" production \
            "$work/prod.yml")
    else
        fail "docker-compose config (production) for inspection" \
            "$(head -n 5 "$work/prod.err")"
    fi
else
    fail "docker-compose is installed" "apt-get install docker-compose"
fi

if docker compose version >/dev/null 2>&1; then
    v2=(docker compose -f "$compose_file")
    check "docker compose (v2) config: demo defaults" \
        compose "${v2[@]}" --env-file "$work/empty.env" config -q
    check "docker compose (v2) config: --profile demo" \
        compose "${v2[@]}" --env-file "$work/empty.env" --profile demo \
        config -q
    check "docker compose (v2) config: production.env.example" \
        compose "${v2[@]}" --env-file "$docker_dir/production.env.example" \
        config -q
else
    note "docker compose (v2) is not installed here; checked with docker-compose 1.29 only"
fi

# --- Dockerfiles ------------------------------------------------------------

tally < <(python3 "$checks" dockerfile "$root")

# One apt-cache call for all names (each call reads the whole cache), then
# one line per package.
mapfile -t runtime_pkgs < <(python3 "$checks" packages "$docker_dir/Dockerfile")
sim_pkgs=(python3 openssl)
known=$(apt-cache show --no-all-versions "${runtime_pkgs[@]}" "${sim_pkgs[@]}" \
    2>/dev/null | sed -n 's/^Package: //p')
apt_has() {
    if printf '%s\n' "$known" | grep -qxF "$2"; then
        pass "apt has $1 package $2"
    else
        fail "apt has $1 package $2" "apt-cache show $2 finds nothing (run apt-get update?)"
    fi
}
for p in "${runtime_pkgs[@]}"; do
    apt_has runtime "$p"
done
for p in "${sim_pkgs[@]}"; do
    apt_has simulator "$p"
done

# Every library the built binary links directly (readelf's NEEDED) must
# come from a runtime package (libc6 is in every Debian image; libraries
# those pull in come with them). ldd gives each library's directory, which
# names the architecture ("*/x86_64-linux-gnu/libm.so.6"), so that the
# 32-bit copies of the C library are not taken for it.
# ctest sets RECGATE_BIN to the binary of the tree it runs in.
bin=${RECGATE_BIN:-$root/build/recgate}
if [ -x "$bin" ] && command -v ldd >/dev/null 2>&1 \
        && command -v readelf >/dev/null 2>&1; then
    missing=()
    resolved=$(ldd "$bin" | awk '$2 == "=>" {print $1, $3}')
    for soname in $(readelf -d "$bin" \
            | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        case $soname in
            # A sanitizer build's runtimes; the image is never built so.
            libasan.so.* | libubsan.so.* | liblsan.so.* | libtsan.so.*)
                continue ;;
        esac
        path=$(printf '%s\n' "$resolved" | awk -v s="$soname" '$1 == s {print $2}')
        pkg=
        if [ -n "$path" ] && [ "${path#/}" != "$path" ]; then
            pkg=$(dpkg -S "*/$(basename "$(dirname "$path")")/$soname" \
                2>/dev/null | grep -v '^diversion' | head -n 1 | cut -d: -f1)
        fi
        if [ -z "$pkg" ]; then
            missing+=("$soname(no package found)")
        elif [ "$pkg" != libc6 ] \
            && ! printf '%s\n' "${runtime_pkgs[@]}" | grep -qx "$pkg"; then
            missing+=("$soname($pkg)")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        pass "runtime packages cover every library $(basename "$bin") links"
    else
        fail "runtime packages cover every library $(basename "$bin") links" \
            "missing ${missing[*]}"
    fi
else
    note "no built binary at $bin: its libraries were not compared"
fi

# --- the demo's PKI -----------------------------------------------------------

check "sim-entrypoint.sh is valid sh" sh -n "$docker_dir/sim-entrypoint.sh"
if SIM_PKI_DIR="$work/pki" sh "$docker_dir/sim-entrypoint.sh" --pki-only \
        >"$work/pki.log" 2>&1; then
    check "demo certificate verifies for host name sim" \
        openssl verify -CAfile "$work/pki/ca.pem" -verify_hostname sim \
        "$work/pki/server.pem"
    mode=$(stat -c %a "$work/pki/private")
    if [ "$mode" = 700 ]; then
        pass "demo private keys are in a 0700 directory"
    else
        fail "demo private keys are in a 0700 directory" "mode $mode"
    fi
else
    fail "sim-entrypoint.sh --pki-only makes the demo PKI" \
        "$(tail -n 5 "$work/pki.log")"
fi

# --- load balancer ------------------------------------------------------------

hap=$docker_dir/haproxy.cfg
check "haproxy.cfg: one frontend on :8080" \
    grep -Eq '^[[:space:]]*bind[[:space:]]+:8080([[:space:]]|$)' "$hap"
check "haproxy.cfg: replicas found by DNS as recgate:8080" \
    grep -Eq '^[[:space:]]*server-template[[:space:]]+[a-z]+[[:space:]]+[0-9]+[[:space:]]+recgate:8080' "$hap"
check "haproxy.cfg: round robin, health from /readyz" \
    sh -c "grep -Eq 'balance[[:space:]]+roundrobin' '$hap' && grep -Eq 'uri /readyz' '$hap'"
if command -v haproxy >/dev/null 2>&1; then
    check "haproxy -c parses haproxy.cfg" haproxy -c -q -f "$hap"
else
    note "haproxy is not installed here: haproxy.cfg was not parsed"
fi

# --- build context --------------------------------------------------------------

check ".dockerignore keeps host build trees and secrets out of the image" \
    sh -c "grep -qx 'build\*/' '$root/.dockerignore' \
           && grep -qx 'docker/secrets/' '$root/.dockerignore' \
           && grep -qx 'docker/.env' '$root/.dockerignore'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
