#!/usr/bin/env bash
# End-to-end test of examples/migrate_from_better_auth.sql with the real better-auth:
#
#   1. better-auth 1.7.5 (with its organization and api-key plugins, pinned by
#      package-lock.json) creates its tables in a fresh database, then users,
#      organizations with members, and API keys of every kind, used through its own
#      verify (tests/better_auth/make_keys.mjs). Its answer for each key is read back.
#   2. The migration runs as superuser: psql -v org_config_ids=org -f
#      examples/migrate_from_better_auth.sql.
#   3. tests/better_auth/check.py verifies every key's text with apikey.verify_api_key:
#      same answer as better-auth, owner, permissions, metadata, remaining quota; mistyped
#      keys and garbage refused; rotation; who may import; then runs the migration a
#      second time and checks that nothing changed.
#
#   tests/better_auth/run.sh
#
# Needs pg_apikey with apikey.import_api_key installed into PostgreSQL 15 (cargo pgrx
# install, as scripts/test.sh does). Installs when missing: Debian nodejs and npm (Node 18,
# Debian 12's, runs better-auth with --experimental-global-webcrypto),
# `npm ci` in tests/better_auth (from the committed package-lock.json), and a Python
# virtual environment with psycopg (the fault tests' one, PGAPIKEY_FAULTS_VENV, default
# /opt/pg_apikey/faults-venv). Scratch cluster in /tmp/pg_apikey_better_auth on port
# 28990, stopped at the end whatever happens. Every check prints "better-auth check ok:
# ..." or "better-auth check FAILED: ..."; the last line counts them.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
use_major 15

HERE="$ROOT/tests/better_auth"
BASE=/tmp/pg_apikey_better_auth
PG_DIR="$BASE/pg"
PORT=28990
DB=better_auth_app
APP_DB=better_auth_app_fn # the same data; membership from the application's functions
ORG_CONFIG=org # make_keys.mjs's api-key configuration with references: "organization"
VENV="${PGAPIKEY_FAULTS_VENV:-$PG_WHEEL_HOME/faults-venv}"
PSYCOPG="psycopg[binary]==3.3.9" # the fault tests' pin: they share the environment

# --- installs ---------------------------------------------------------------------------

ensure_node() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "installing Debian packages: nodejs npm"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    fi
    if [ -d "$HERE/node_modules" ] && cmp -s "$HERE/package-lock.json" "$HERE/node_modules/.package-lock.json.installed"; then
        return
    fi
    log "npm ci in tests/better_auth (better-auth 1.7.5, pinned by package-lock.json)"
    (cd "$HERE" && timeout 600 npm ci --no-audit --no-fund --loglevel=error)
    cp "$HERE/package-lock.json" "$HERE/node_modules/.package-lock.json.installed"
}

# Node 18 (Debian 12's) runs better-auth only with the Web Crypto global, which is on by
# default from Node 19.
NODE=(node)
node_flags() {
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    if [ "$major" -lt 18 ]; then
        echo "better-auth 1.7.5 needs Node 18 or later; found $(node --version)" >&2
        exit 1
    fi
    [ "$major" -ge 19 ] || NODE+=(--experimental-global-webcrypto)
}

ensure_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        as_root mkdir -p "$(dirname "$VENV")"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -c "import psycopg" 2>/dev/null ||
        timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PSYCOPG"
}

# --- cluster ----------------------------------------------------------------------------

# Stop the cluster in PG_DIR; if pg_ctl cannot, kill -9 the postmaster named by its
# postmaster.pid when that process really serves PG_DIR/data (its children exit with it).
stop_ours() {
    local pid
    stop_cluster "$PG_DIR"
    pid="$(head -n1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$PG_DIR/data"; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    return 0
}

psql_db() { timeout 120 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR/sock" -p "$PORT" -U postgres -d "$DB" "$@"; }

# The migration as a user runs it (no -q: it prints its summary line), in each database.
MIGRATION=(-v org_config_ids="$ORG_CONFIG" -f "$ROOT/examples/migrate_from_better_auth.sql")
MIGRATE=("$PG_BIN/psql" -X -h "$PG_DIR/sock" -p "$PORT" -U postgres -d "$DB" "${MIGRATION[@]}")
MIGRATE_APP=("$PG_BIN/psql" -X -h "$PG_DIR/sock" -p "$PORT" -U postgres -d "$APP_DB" "${MIGRATION[@]}")

# --- the run ------------------------------------------------------------------------------

started=$SECONDS
OUT="$BASE/run.out"
ensure_node
node_flags
ensure_python

trap stop_ours EXIT
trap 'exit 130' INT TERM
stop_ours # a cluster left by an interrupted earlier run
rm -rf "$BASE"
mkdir -p "$BASE"
log "scratch PostgreSQL 15 in $PG_DIR on 127.0.0.1:$PORT"
init_cluster "$PG_DIR"
start_cluster "$PG_DIR" "$PORT"
psql_at "$PG_DIR" "$PORT" -d postgres -c "CREATE DATABASE $DB"

export PGHOST="$PG_DIR/sock" PGPORT="$PORT" PGUSER=postgres PGDATABASE="$DB"
: >"$OUT"
say() { echo "$*" | tee -a "$OUT"; }

# run_stage WHAT COMMAND...: a step whose failure fails the run (and skips the rest).
run_stage() {
    local what="$1" rc=0
    shift
    "$@" 2>&1 | tee "$BASE/stage.out" || rc=$?
    if [ "$rc" != 0 ]; then
        say "better-auth check FAILED: $what: exit status $rc"
        return 1
    fi
}

# run_checks WHAT COMMAND...: check.py; an exit without a FAILED line of its own (killed
# by its timeout, say) is a failure too.
run_checks() {
    local what="$1" rc=0 before
    shift
    before="$(grep -c '^better-auth check FAILED' "$OUT" || true)"
    "$@" 2>&1 | tee -a "$OUT" || rc=$?
    if [ "$rc" != 0 ] && [ "$(grep -c '^better-auth check FAILED' "$OUT" || true)" = "$before" ]; then
        say "better-auth check FAILED: $what: exit status $rc"
    fi
    return 0
}

finish() {
    local passed failed
    passed="$(grep -c '^better-auth check ok:' "$OUT" || true)"
    failed="$(grep -c '^better-auth check FAILED' "$OUT" || true)"
    echo "better-auth run took $((SECONDS - started)) s"
    echo "better-auth: $passed passed, $failed failed"
    [ "$failed" = 0 ] && [ "$passed" -gt 0 ]
}

if ! psql_db -c "CREATE EXTENSION pg_apikey"; then
    say "better-auth check FAILED: CREATE EXTENSION pg_apikey (is it installed into PostgreSQL 15?)"
    finish
    exit 1
fi
have="$(psql_db -At -c "SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                        WHERE n.nspname = 'apikey' AND p.proname = 'import_api_key'")"
if [ "$have" = 0 ]; then
    say "better-auth check FAILED: pg_apikey: the installed build has no apikey.import_api_key (install a newer build)"
    finish
    exit 1
fi

log "better-auth makes its tables, users, organizations and keys (make_keys.mjs)"
if ! run_stage "make_keys.mjs" timeout 180 "${NODE[@]}" "$HERE/make_keys.mjs" "$BASE/keys.json"; then finish; exit 1; fi
nkeys="$(grep -c '^better-auth key ' "$BASE/stage.out" || true)"
# How many of them the migration must import (the others' organization is gone).
nimport="$("$VENV/bin/python" -c 'import json, sys; print(sum(k["pg_apikey"]["imported"] for k in json.load(open(sys.argv[1]))["keys"]))' "$BASE/keys.json")"
nlisted="$("$VENV/bin/python" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["keys"]))' "$BASE/keys.json")"
if [ "$nkeys" -gt 0 ] && [ "$nkeys" = "$nlisted" ]; then
    say "better-auth check ok: better-auth 1.7.5 made $nkeys keys and read back its own answers"
else
    say "better-auth check FAILED: make_keys.mjs printed $nkeys keys, keys.json lists $nlisted"
    finish
    exit 1
fi

# A copy as better-auth left it, where the application answers membership questions
# itself from better-auth's tables (as examples/better_auth_membership.sql does).
psql_at "$PG_DIR" "$PORT" -d postgres -c "CREATE DATABASE $APP_DB TEMPLATE $DB"
timeout 120 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR/sock" -p "$PORT" -U postgres -d "$APP_DB" <<SQL
CREATE SCHEMA app;
GRANT USAGE ON SCHEMA app TO PUBLIC;
CREATE FUNCTION app.org_exists(org_id text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS \$\$ SELECT EXISTS (SELECT 1 FROM public."organization" o WHERE o.id = org_id) \$\$;
CREATE FUNCTION app.member_roles(org_id text, user_id text) RETURNS text[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS \$\$ SELECT array_agg(pg_catalog.btrim(r))
             FROM public."member" m, pg_catalog.unnest(pg_catalog.string_to_array(m.role, ',')) r
            WHERE m."organizationId" = org_id AND m."userId" = user_id \$\$;
LOAD 'pg_apikey';
ALTER DATABASE $APP_DB SET apikey.org_exists_function = 'app.org_exists';
ALTER DATABASE $APP_DB SET apikey.member_roles_function = 'app.member_roles';
SQL

log "the migration: ${MIGRATE[*]}"
if ! run_stage "first migration" timeout 120 "${MIGRATE[@]}"; then finish; exit 1; fi
summary="$(grep '^better-auth migration:' "$BASE/stage.out" || true)"
case "$summary" in
    "better-auth migration: $nimport keys imported, 0 already present, $((nkeys - nimport)) skipped;"*)
        say "better-auth check ok: first migration: ${summary#better-auth migration: }" ;;
    *) say "better-auth check FAILED: first migration: summary '$summary', expected $nimport keys imported, $((nkeys - nimport)) skipped" ;;
esac

log "checks, and a second run of the migration (check.py)"
run_checks "check.py" timeout 300 "$VENV/bin/python" -u "$HERE/check.py" "$BASE/keys.json" -- \
    timeout 120 "${MIGRATE[@]}"

log "the migration where the application's functions answer membership ($APP_DB)"
run_checks "check.py --app-membership" env PGDATABASE="$APP_DB" timeout 300 "$VENV/bin/python" -u "$HERE/check.py" \
    --app-membership "$BASE/keys.json" -- timeout 120 "${MIGRATE_APP[@]}"
finish
