# Shared helpers for pg_apikey's scripts. Source it; do not run it.
# Everything here is safe to re-run: each step checks before it installs or starts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR=15
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config}"
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PGRX_VERSION=0.18.1
APT_PACKAGES=(postgresql-${PG_MAJOR} postgresql-server-dev-${PG_MAJOR} clang libclang-dev sudo pkg-config build-essential)
export USER="${USER:-$(id -un)}"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\n==> %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Run a command as the OS user that owns scratch clusters: postgres when we are root
# (PostgreSQL refuses to run as root), else ourselves.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

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
    if ! grep -qs "pg${PG_MAJOR} *= *\"${PG_CONFIG}\"" "$HOME/.pgrx/config.toml"; then
        log "cargo pgrx init --pg${PG_MAJOR} ${PG_CONFIG}"
        cargo pgrx init --pg${PG_MAJOR} "$PG_CONFIG"
    fi
}

# Build the extension and install it into the PostgreSQL that $PG_CONFIG names.
install_extension() {
    local profile_flag=()
    [ "${1:-}" = release ] && profile_flag=(--release)
    log "building and installing pg_apikey (${1:-debug})"
    if [ "$(id -u)" = 0 ]; then
        (cd "$ROOT" && cargo pgrx install --pg-config "$PG_CONFIG" "${profile_flag[@]}")
    else
        (cd "$ROOT" && cargo pgrx install --sudo --pg-config "$PG_CONFIG" "${profile_flag[@]}")
    fi
}

# start_cluster DIR PORT: a throwaway cluster in DIR (created fresh when missing),
# listening on 127.0.0.1:PORT and on a unix socket in DIR/sock. Trust authentication:
# it exists only for this machine's tests and demos.
start_cluster() {
    local dir="$1" port="$2"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        rm -rf "$dir"
        mkdir -p "$dir/sock"
        [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
        as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-instructions >/dev/null
    fi
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
        as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
