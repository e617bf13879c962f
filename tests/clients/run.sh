#!/usr/bin/env bash
# Run the application-client examples (examples/clients/{python,node,rust,java}) against a
# scratch PostgreSQL 15 with pg_apikey, each twice: directly, and through a PgBouncer in
# transaction pool mode. Each example asserts what the database returns and exits non-zero
# on any mismatch; the last line counts the runs that passed.
#
#   tests/clients/run.sh                  install what is missing, start, run all, stop
#   tests/clients/run.sh python java      only these examples
#   tests/clients/run.sh start | stop     keep the cluster and PgBouncer up (development)
#
# Needs pg_apikey installed into PostgreSQL 15 (cargo pgrx install, as scripts/test.sh does).
# Installs: Debian pgbouncer and libpostgresql-jdbc-java (and node, a JDK if missing),
# a Python virtual environment (PGAPIKEY_CLIENTS_VENV, default /opt/pg_apikey/clients-venv)
# with the pinned psycopg, `npm ci` from the committed package-lock.json, and the Rust
# example built with cargo --locked into target/client-examples.
# Ports 28980 (PostgreSQL), 28981 (PgBouncer), 28982-28985 (the examples' HTTP servers);
# data and logs under /tmp/pg_apikey_clients, compiled Java classes in /tmp/pg_apikey_clients-build.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
use_major 15

BASE="${PGAPIKEY_CLIENTS_DIR:-/tmp/pg_apikey_clients}"
PG_DIR="$BASE/pg"
BOUNCER_DIR="$BASE/bouncer"
PG_PORT=28980
BOUNCER_PORT=28981
DB=apikey_clients
VENV="${PGAPIKEY_CLIENTS_VENV:-/opt/pg_apikey/clients-venv}"
EXAMPLES="$ROOT/examples/clients"
SCANNING="$ROOT/examples/secret_scanning"
RUST_TARGET="$ROOT/target/client-examples"
JAVA_CLASSES="$BASE-build/java-classes"
JDBC_JAR=/usr/share/java/postgresql.jar
ALL_CLIENTS=(python node rust java)

# --- installs ---------------------------------------------------------------------------

ensure_debian() {
    local missing=() p
    for p in pgbouncer libpostgresql-jdbc-java python3-venv; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
    command -v javac >/dev/null || missing+=(default-jdk-headless)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # The Debian package enables a system PgBouncer service; ours is separate and on its
    # own port, so that one is left alone either way.
}

ensure_python() {
    # The Python example's and the secret-scanning handler's (examples/secret_scanning).
    local want
    want="$(cat "$EXAMPLES/python/requirements.txt" "$SCANNING/requirements.txt")"
    if [ -x "$VENV/bin/python" ] && [ "$want" = "$(cat "$VENV/.requirements" 2>/dev/null)" ]; then return; fi
    log "installing the Python example's and the secret-scanning handler's requirements into $VENV"
    rm -rf "$VENV"
    as_root mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$EXAMPLES/python/requirements.txt" \
        -r "$SCANNING/requirements.txt"
    printf '%s' "$want" >"$VENV/.requirements"
}

ensure_node() {
    local dir="$EXAMPLES/node"
    if [ -d "$dir/node_modules" ] && cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.installed"; then
        return
    fi
    log "npm ci in examples/clients/node (pinned by package-lock.json)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.installed"
}

ensure_rust() {
    log "building the Rust example (cargo --locked, target/client-examples)"
    # Its own cargo project: the empty [workspace] in its Cargo.toml keeps it out of the
    # repository's workspace, and it builds into its own target directory.
    (cd "$EXAMPLES/rust" && CARGO_TARGET_DIR="$RUST_TARGET" nice cargo build --release --locked --quiet)
}

ensure_java() {
    log "compiling the Java example (javac, Debian's PgJDBC)"
    rm -rf "$JAVA_CLASSES"
    mkdir -p "$JAVA_CLASSES"
    javac -Xlint:all -Werror -cp "$JDBC_JAR" -d "$JAVA_CLASSES" "$EXAMPLES/java/ApiKeyClient.java"
}

# --- cluster and PgBouncer ----------------------------------------------------------------

# The pg_apikey version this tree builds: the one the examples are written against.
WANT_VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"

psql_db() { psql_at "$PG_DIR" "$PG_PORT" -d "$DB" "$@"; }

create_database() {
    psql_at "$PG_DIR" "$PG_PORT" -d postgres -c "CREATE DATABASE $DB"
    local have
    have="$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$("$PG_CONFIG" --sharedir)/extension/pg_apikey.control" 2>/dev/null || true)"
    [ "$have" = "$WANT_VERSION" ] ||
        { echo "pg_apikey $WANT_VERSION is not installed into PostgreSQL 15 (found '${have:-nothing}'): run scripts/test.sh, or cargo pgrx install" >&2; exit 1; }
    psql_db -c "CREATE EXTENSION pg_apikey"
    # The service role the examples provision with (trusted: a member of apikey_service)
    # and an ordinary LOGIN role, to show what the extension refuses it.
    psql_db <<'SQL'
CREATE ROLE clients_service LOGIN IN ROLE apikey_service;
CREATE ROLE clients_app LOGIN;
SQL
}

start_bouncer() {
    mkdir -p "$BOUNCER_DIR"
    cat >"$BOUNCER_DIR/userlist.txt" <<'EOF'
"postgres" ""
"clients_service" ""
"clients_app" ""
EOF
    # Transaction pooling, as in production setups that share server connections between
    # clients. auth_type = trust: loopback only, a throwaway cluster (the users must still
    # be listed in auth_file). PgJDBC sends extra_float_digits, which 1.18 does not track.
    cat >"$BOUNCER_DIR/pgbouncer.ini" <<EOF
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $BOUNCER_DIR
auth_type = trust
auth_file = $BOUNCER_DIR/userlist.txt
pool_mode = transaction
default_pool_size = 10
max_client_conn = 100
ignore_startup_parameters = extra_float_digits
admin_users = postgres
logfile = $BOUNCER_DIR/pgbouncer.log
pidfile = $BOUNCER_DIR/pgbouncer.pid
EOF
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$BOUNCER_DIR"
    as_pg pgbouncer -d -q "$BOUNCER_DIR/pgbouncer.ini"
    local i
    for i in $(seq 1 50); do
        psql -X -q -h 127.0.0.1 -p "$BOUNCER_PORT" -U postgres -d "$DB" -c 'SELECT 1' >/dev/null 2>&1 && return
        sleep 0.2
    done
    echo "PgBouncer did not come up; see $BOUNCER_DIR/pgbouncer.log" >&2
    exit 1
}

stop_bouncer() {
    local pid
    pid="$(cat "$BOUNCER_DIR/pgbouncer.pid" 2>/dev/null || true)"
    [ -n "$pid" ] || return 0
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

stop_all() { stop_bouncer; stop_cluster "$PG_DIR"; }

start_all() {
    stop_all
    rm -rf "$BASE"
    mkdir -p "$BASE"
    log "scratch PostgreSQL 15 in $PG_DIR on 127.0.0.1:$PG_PORT, PgBouncer (transaction mode) on 127.0.0.1:$BOUNCER_PORT"
    init_cluster "$PG_DIR"
    start_cluster "$PG_DIR" "$PG_PORT"
    create_database
    start_bouncer
}

# --- the examples -----------------------------------------------------------------------

# run_example CLIENT VIA: one example, against PostgreSQL directly or through PgBouncer.
run_example() {
    local client="$1" via="$2" port=$PG_PORT cmd=()
    [ "$via" = pgbouncer ] && port=$BOUNCER_PORT
    case "$client" in
        python) cmd=("$VENV/bin/python" "$EXAMPLES/python/apikey_client.py") ;;
        node) cmd=(node "$EXAMPLES/node/apikey_client.js") ;;
        rust) cmd=("$RUST_TARGET/release/apikey-client") ;;
        java) cmd=(java -cp "$JAVA_CLASSES:$JDBC_JAR" ApiKeyClient) ;;
    esac
    # libpq-style variables: psycopg and node-pg read them themselves, the Rust and Java
    # examples read them explicitly. APIKEY_VIA picks prepared statements (direct) or the
    # pooler-safe unnamed statements (pgbouncer).
    env PGHOST=127.0.0.1 PGPORT="$port" PGDATABASE="$DB" \
        APIKEY_VIA="$via" APIKEY_SERVICE_USER=clients_service APIKEY_APP_USER=clients_app \
        APIKEY_HTTP_PORT="$(http_port "$client")" \
        timeout 120 "${cmd[@]}"
}

lib_kind() {
    if readelf -S "$("$PG_CONFIG" --pkglibdir)/pg_apikey.so" 2>/dev/null | grep -q '\.debug_info'; then
        echo "library with debug info: a debug build"
    else
        echo "library without debug info: a release build"
    fi
}

http_port() { case "$1" in python) echo 28982 ;; node) echo 28983 ;; java) echo 28984 ;; *) echo 0 ;; esac; }

# What examples/clients/README.md says about settings, poolers and roles, asserted with psql.
fact() { # fact WHAT EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then
        echo "client check ok: $1"
    else
        echo "client check FAILED: $1: expected '$2', got '$3'"
        FACTS_FAILED=1
    fi
}

FACTS_FAILED=0
# step PSQL ARGS…: a statement that sets up or resets a fact (run as part of a check, where
# errexit does not hold): stops at its first error, and a failure is a failed check.
step() {
    if ! "$1" -v ON_ERROR_STOP=1 "${@:2}" >/dev/null; then
        echo "client check FAILED: setup step: ${*:2}"
        FACTS_FAILED=1
    fi
}
documented_facts() {
    local direct=(psql -X -At -h 127.0.0.1 -p "$PG_PORT" -d "$DB") pooled=(psql -X -At -h 127.0.0.1 -p "$BOUNCER_PORT" -d "$DB")
    # ALTER SYSTEM of an apikey.* setting needs the library loaded in that session.
    fact "ALTER SYSTEM SET apikey.* in a fresh session: 42704" "ERROR:  42704" \
        "$("${direct[@]}" -U postgres -v VERBOSITY=sqlstate -c "ALTER SYSTEM SET apikey.last_used_resolution = 30" 2>&1)"
    fact "LOAD 'pg_apikey' first, then ALTER SYSTEM SET apikey.* works" "ALTER SYSTEM" \
        "$("${direct[@]}" -U postgres -c "LOAD 'pg_apikey'" -c "ALTER SYSTEM SET apikey.last_used_resolution = 30" 2>&1 | tail -1)"
    step "${direct[@]}" -U postgres -c "LOAD 'pg_apikey'" -c "ALTER SYSTEM RESET apikey.last_used_resolution"
    # ... or have every new session load it (no restart; shared_preload_libraries needs one).
    step "${direct[@]}" -U postgres -c "ALTER SYSTEM SET session_preload_libraries = 'pg_apikey'" -c "SELECT pg_reload_conf()"
    fact "with session_preload_libraries = 'pg_apikey', a fresh session's ALTER SYSTEM SET apikey.* works" "ALTER SYSTEM" \
        "$("${direct[@]}" -U postgres -c "ALTER SYSTEM SET apikey.last_used_resolution = 30" 2>&1)"
    step "${direct[@]}" -U postgres -c "ALTER SYSTEM RESET apikey.last_used_resolution" \
        -c "ALTER SYSTEM RESET session_preload_libraries" -c "SELECT pg_reload_conf()"

    # ALTER ROLE ... SET reaches a pooled server connection only when it reconnects.
    # (The prefix a new key gets: what pg_apikey itself reads.)
    local prefix="SELECT prefix FROM apikey.create_api_key(org_id => 'clients-facts')"
    step "${direct[@]}" -U postgres -c "SELECT id FROM apikey.create_organization('clients-facts')"
    step "${pooled[@]}" -U clients_service -c "$prefix" # a server connection made before the change
    step "${direct[@]}" -U postgres -c "ALTER ROLE clients_service SET apikey.default_prefix = 'pool_'"
    fact "ALTER ROLE ... SET apikey.default_prefix: a new direct session sees it" "pool_" \
        "$("${direct[@]}" -U clients_service -c "$prefix")"
    fact "... a pooled server connection made before does not" "ak_" "$("${pooled[@]}" -U clients_service -c "$prefix")"
    step psql -X -q -h 127.0.0.1 -p "$BOUNCER_PORT" -U postgres -d pgbouncer -c "RECONNECT $DB"
    fact "... until PgBouncer reconnects it (RECONNECT, or server_lifetime)" "pool_" \
        "$("${pooled[@]}" -U clients_service -c "$prefix")"
    step "${direct[@]}" -U postgres -c "ALTER ROLE clients_service RESET apikey.default_prefix"
    step psql -X -q -h 127.0.0.1 -p "$BOUNCER_PORT" -U postgres -d pgbouncer -c "RECONNECT $DB"

    # Session-level SET ROLE stays on the server connection for the next client; SET LOCAL does not.
    step "${pooled[@]}" -U postgres -c "SET ROLE clients_app"
    fact "through PgBouncer, a session SET ROLE leaks to the next client" "clients_app" \
        "$("${pooled[@]}" -U postgres -c "SELECT current_user")"
    step "${pooled[@]}" -U postgres -c "RESET ROLE"
    fact "SET LOCAL ROLE ends with its transaction" "clients_app postgres" \
        "$("${pooled[@]}" -U postgres -c "BEGIN" -c "SET LOCAL ROLE clients_app" -c "SELECT current_user" -c "COMMIT" -c "SELECT current_user" | grep -v -e BEGIN -e SET -e COMMIT | xargs)"

    # A LOGIN NOINHERIT role granted a service-role member is itself trusted: membership counts.
    step "${direct[@]}" -U postgres -c "CREATE ROLE clients_gateway LOGIN NOINHERIT" -c "GRANT clients_service TO clients_gateway"
    fact "a NOINHERIT login granted a service-role member: no privileges inherited, yet a member" "f|t" \
        "$("${direct[@]}" -U clients_gateway -c "SELECT pg_has_role('apikey_service', 'USAGE'), pg_has_role('apikey_service', 'MEMBER')")"
    fact "... and so a trusted caller: it creates organizations" "gateway-made-this" \
        "$("${direct[@]}" -U clients_gateway -c "SELECT id FROM apikey.create_organization('gateway-made-this')")"
    return "$FACTS_FAILED"
}

# The 30-line psycopg snippet of docs/application-developers.md (examples/clients/python/
# snippet.py), run as the untrusted clients_app role against a key with a quota of 5 and a
# limit of 3 a minute: status and headers from verify's row alone, call after call.
snippet_check() {
    local direct=(psql -X -At -h 127.0.0.1 -p "$PG_PORT" -d "$DB") key out i
    SNIPPET_FAILED=0
    key="$("${direct[@]}" -U clients_service -c "SELECT id FROM apikey.create_organization('clients-snippet')" \
        -c "SELECT key FROM apikey.create_api_key(org_id => 'clients-snippet', remaining => 5,
                rate_limits => '[{\"name\": \"minute\", \"limit\": 3, \"window\": \"1 minute\"}]')" | tail -1)"
    snippet() { env APIKEY_DSN="host=127.0.0.1 port=$PG_PORT dbname=$DB user=clients_app" \
        timeout 30 "$VENV/bin/python" "$EXAMPLES/python/snippet.py" "$1" 2>&1; }
    expect() { # expect WHAT OUTPUT PATTERN…: every pattern is in the output
        local what="$1" out="$2" p
        shift 2
        for p in "$@"; do
            if [[ "$out" != *"$p"* ]]; then
                echo "client check FAILED: snippet: $what: no '$p' in: $out"
                SNIPPET_FAILED=1
                return
            fi
        done
        echo "client check ok: snippet: $what: $out"
    }
    expect "first call" "$(snippet "$key")" "200 {" "'X-RateLimit-Limit': '3'" "'X-RateLimit-Remaining': '2'" \
        "'X-RateLimit-Reset': '" "'X-Quota-Remaining': '4'"
    for i in 2 3; do out="$(snippet "$key")"; done
    expect "third call" "$out" "200 {" "'X-RateLimit-Remaining': '0'" "'X-Quota-Remaining': '2'"
    expect "fourth call, over the minute's limit" "$(snippet "$key")" "429 {" "'X-RateLimit-Remaining': '0'" \
        "'Retry-After': '" "'X-Quota-Remaining': '2'"
    expect "a made-up key" "$(snippet "ak_made_up")" "401 {'WWW-Authenticate': 'Bearer realm=\"api\"'}"
    return "$SNIPPET_FAILED"
}

# The secret-scanning handler (examples/secret_scanning/github_handler.py) and its test,
# as the service role: signed reports in, GitHub's feedback out; bad signatures refused.
scanning_check() {
    (cd "$SCANNING" && env APIKEY_DSN="host=127.0.0.1 port=$PG_PORT dbname=$DB user=clients_service" \
        timeout 60 "$VENV/bin/python" test_github_handler.py 28985)
}

case "${1:-}" in
    stop)
        stop_all
        exit 0
        ;;
    start)
        ensure_debian
        start_all
        echo "PGHOST=127.0.0.1 PGPORT=$PG_PORT (direct) or $BOUNCER_PORT (PgBouncer) PGDATABASE=$DB; tests/clients/run.sh stop"
        exit 0
        ;;
esac

CLIENTS=("$@")
[ "${#CLIENTS[@]}" -gt 0 ] || CLIENTS=("${ALL_CLIENTS[@]}")
for c in "${CLIENTS[@]}"; do
    case " ${ALL_CLIENTS[*]} " in *" $c "*) ;; *) echo "unknown example '$c' (have: ${ALL_CLIENTS[*]})" >&2; exit 2 ;; esac
done

started=$(date +%s)
ensure_debian
for c in "${CLIENTS[@]}"; do "ensure_$c"; done

trap stop_all EXIT
start_all

passed=0 failed=0 failures=() figures=()
for via in direct pgbouncer; do
    for c in "${CLIENTS[@]}"; do
        log "$c example, $via ($([ "$via" = direct ] && echo "127.0.0.1:$PG_PORT" || echo "PgBouncer 127.0.0.1:$BOUNCER_PORT, transaction mode"))"
        out="$BASE/$c-$via.out"
        ok=0
        # (pipefail, from lib.sh: the pipeline fails when the example does.)
        if run_example "$c" "$via" 2>&1 | tee "$out"; then ok=1; fi
        if [ "$ok" = 1 ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            failures+=("$c/$via")
        fi
        while IFS= read -r line; do figures+=("$line ($via)"); done < <(grep '^client figure:' "$out" || true)
    done
done

log "what examples/clients/README.md says about settings, PgBouncer and roles"
if documented_facts; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=(documented-facts); fi
if [[ " ${CLIENTS[*]} " == *" python "* ]]; then
    log "the psycopg snippet of docs/application-developers.md, as the untrusted role"
    if snippet_check; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=(snippet); fi
    log "the secret-scanning handler (examples/secret_scanning), signed with a key pair made here"
    if scanning_check; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=(secret-scanning); fi
fi

log "figures (one connection each; a 2-core machine, shared; pg_apikey $(lib_kind))"
printf '%s\n' "${figures[@]}"
[ "$failed" = 0 ] || echo "failed: ${failures[*]}"
echo "clients run took $(($(date +%s) - started)) s"
echo "clients: $passed passed, $failed failed"
[ "$failed" = 0 ]
