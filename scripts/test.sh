#!/usr/bin/env bash
# Run every pg_apikey test, from a machine that has never seen the project:
#   1. installs what is missing (Debian packages, cargo-pgrx 0.18.1, pgrx init);
#   2. the #[pg_test]s and unit tests (cargo pgrx test, in pgrx's own test cluster);
#   3. installs the extension and starts a scratch cluster (private port and data dir);
#   4. the pg_regress files in tests/pg_regress against it;
#   5. the multi-role integration tests in tests/integration, over real connections.
# Exits non-zero if any step fails. Safe to re-run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEST_DIR="${PGAPIKEY_TEST_DIR:-/tmp/pg_apikey_test}"
TEST_PORT="${PGAPIKEY_TEST_PORT:-28816}"
PGTEST_DATA="${TEST_DIR}-pgrx"
REGRESS="$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress"

cleanup() { stop_cluster "$TEST_DIR"; }
trap cleanup EXIT
SUMMARY="$(mktemp)"
# Run a test step, keeping its output for the closing count.
counted() { "$@" 2>&1 | tee -a "$SUMMARY"; }

ensure_deps

log "unit tests and #[pg_test]s (cargo pgrx test pg${PG_MAJOR})"
rm -rf "$PGTEST_DATA"
if [ "$(id -u)" = 0 ]; then
    (cd "$ROOT" && counted cargo pgrx test "pg${PG_MAJOR}" --runas postgres --pgdata "$PGTEST_DATA")
else
    (cd "$ROOT" && counted cargo pgrx test "pg${PG_MAJOR}")
fi

install_extension
log "scratch cluster in $TEST_DIR on port $TEST_PORT"
stop_cluster "$TEST_DIR"
rm -rf "$TEST_DIR"
start_cluster "$TEST_DIR" "$TEST_PORT"

log "pg_regress: tests/pg_regress"
OUT="$TEST_DIR/regress"
mkdir -p "$OUT"
# From the repository root: the files include examples/*.sql by that relative path.
cd "$ROOT"
if ! counted "$REGRESS" --host="$TEST_DIR/sock" --port="$TEST_PORT" --user=postgres \
        --inputdir="$ROOT/tests/pg_regress" --outputdir="$OUT" \
        --schedule="$ROOT/tests/pg_regress/schedule" --dbname=pg_apikey_regress; then
    cat "$OUT/regression.diffs" >&2 || true
    exit 1
fi

log "integration tests: several roles over real connections"
"$PG_BIN/psql" -X -q -h "$TEST_DIR/sock" -p "$TEST_PORT" -U postgres -d postgres \
    -c "CREATE DATABASE pg_apikey_it" -c "\\c pg_apikey_it" -c "CREATE EXTENSION pg_apikey"
(cd "$ROOT" && PGAPIKEY_TEST_HOST="$TEST_DIR/sock" PGAPIKEY_TEST_PORT="$TEST_PORT" PGAPIKEY_TEST_DB=pg_apikey_it \
    counted cargo test -p pg_apikey_integration)

rust=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$SUMMARY" | awk '{s += $4} END {print s + 0}')
regress=$(grep -Ec '^(ok|test) .*[. ] ok ' "$SUMMARY" || true)
log "all pg_apikey tests passed: $rust Rust tests (unit, #[pg_test], integration), $regress pg_regress files"
echo "pg_apikey: $((rust + regress)) passed, 0 failed"
