#!/usr/bin/env bash
# Start or stop the services the test suite needs that pytest does not start itself.
#
#   scripts/services.sh start ENV_FILE   install PostgreSQL if missing, start a throwaway
#                                        server on 127.0.0.1 in a temporary folder, and write
#                                        `export ...` lines to ENV_FILE for `source`
#   scripts/services.sh stop ENV_FILE    stop that server and delete its folder
#
# The S3-compatible server (moto) is started by the pytest fixture `s3_endpoint`.
set -euo pipefail

die() { echo "services.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop ENV_FILE"; }

# Run a command as the postgres user when we are root (initdb refuses to run as root).
as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then
        local quoted
        printf -v quoted '%q ' "$@"
        su postgres -s /bin/sh -c "$quoted"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ensure_postgres() {
    if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and installing it needs root (apt-get install -y postgresql)"
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available"
    echo "services.sh: installing PostgreSQL" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    command -v pg_config >/dev/null 2>&1 || die "apt-get installed postgresql but pg_config is still missing"
}

# Install Debian packages whose binary is missing (idempotent; needs root and apt-get).
# Usage: ensure_binaries "BINARY PACKAGE [--no-install-recommends]" ...
ensure_binaries() {
    local wanted=() spec binary package
    for spec in "$@"; do
        read -r binary package <<<"$spec"
        command -v "$binary" >/dev/null 2>&1 || wanted+=("$package")
    done
    [[ ${#wanted[@]} -eq 0 ]] && return
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "services.sh: missing ${wanted[*]} (apt-get install as root); tests needing them skip" >&2
        return
    fi
    echo "services.sh: installing ${wanted[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
}

# Prometheus (the serving tests start their own server scraping /metrics) and wrk (benchmarks).
# The Debian package registers a service but starts nothing here (no init system runs it).
ensure_serving_tools() {
    ensure_binaries "prometheus prometheus" "wrk wrk"
}

start() {
    local env_file=$1
    ensure_postgres
    ensure_serving_tools
    # Monitoring tests: promtool, Alertmanager (started by the tests), Chromium for the page.
    ensure_binaries "promtool prometheus" "prometheus-alertmanager prometheus-alertmanager" \
        "chromium chromium"
    # The Ray tests run a local Ray cluster inside its own network namespace (unshare, ip).
    ensure_binaries "unshare util-linux" "ip iproute2"
    # The image test (tests/deploy/test_image.py): build and run a real image with podman.
    ensure_binaries "podman podman" "buildah buildah" "runc runc" "debootstrap debootstrap"
    local bindir dir port
    bindir=$(pg_config --bindir)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/readyml-services.XXXXXX")
    chmod 755 "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres:postgres "$dir"
    fi
    port=$(free_port)
    as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || die "initdb failed; see $dir/initdb.log"
    as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null \
        || die "PostgreSQL did not start; see $dir/log"
    {
        echo "export READYML_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
        echo "export READYML_SERVICES_DIR=$dir"
        # Services were asked for: tests that need them fail rather than skip.
        echo "export READYML_REQUIRE_SERVICES=1"
    } >"$env_file"
    echo "services.sh: PostgreSQL on 127.0.0.1:$port (folder $dir); environment in $env_file" >&2
}

stop() {
    local env_file=$1
    [[ -f $env_file ]] || die "env file $env_file not found (was 'start' run?)"
    local dir
    dir=$(sed -n 's/^export READYML_SERVICES_DIR=//p' "$env_file")
    [[ -n $dir ]] || die "env file $env_file has no READYML_SERVICES_DIR line"
    if [[ -f $dir/data/postmaster.pid ]]; then
        as_postgres "$(pg_config --bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null \
            || die "PostgreSQL in $dir did not stop"
    fi
    rm -rf -- "$dir"
    echo "services.sh: stopped PostgreSQL and removed $dir" >&2
}

[[ $# -eq 2 ]] || usage
case $1 in
    start) start "$2" ;;
    stop) stop "$2" ;;
    *) usage ;;
esac
