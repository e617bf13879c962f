#!/usr/bin/env bash
# Run the isolation specs of tests/isolation/specs with PostgreSQL's isolationtester
# against a running cluster, and compare each output with tests/isolation/expected.
#
#   tests/isolation/run.sh PG_CONFIG HOST PORT [SPEC…]
#
# The database pg_apikey_isolation is made afresh with the extension. Each spec's setup
# and teardown make and remove what it uses; each permutation runs in sessions of their
# own. Prints "isolation check ok: SPEC" per spec that matches, and the diff of one that
# does not; exits non-zero if any does not.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG_CONFIG="$1" HOST="$2" PORT="$3"
shift 3
BIN="$("$PG_CONFIG" --bindir)"
TESTER="$(dirname "$("$PG_CONFIG" --pgxs)")/../test/isolation/isolationtester"
[ -x "$TESTER" ] || { echo "no isolationtester at $TESTER" >&2; exit 1; }
OUT="${PGAPIKEY_ISOLATION_OUT:-/tmp/pg_apikey_isolation}"
rm -rf "$OUT" && mkdir -p "$OUT"
DB=pg_apikey_isolation
psql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d "$DB" -c "CREATE EXTENSION pg_apikey"

specs=("$@")
if [ "${#specs[@]}" = 0 ]; then
    for f in "$HERE"/specs/*.spec; do specs+=("$(basename "$f" .spec)"); done
fi
failed=0
for spec in "${specs[@]}"; do
    out="$OUT/$spec.out"
    # isolationtester's own timeout for a step that waits is the server's; bound the run.
    if ! timeout 120 "$TESTER" "host=$HOST port=$PORT user=postgres dbname=$DB" \
            <"$HERE/specs/$spec.spec" >"$out" 2>&1; then
        echo "isolationtester failed on $spec:" >&2
        cat "$out" >&2
        failed=1
        continue
    fi
    if diff -u "$HERE/expected/$spec.out" "$out"; then
        echo "isolation check ok: $spec"
    else
        echo "isolation check FAILED: $spec (diff above; output in $out)"
        failed=1
    fi
done
exit "$failed"
