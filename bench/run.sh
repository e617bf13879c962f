#!/usr/bin/env bash
# pg_apikey benchmark: builds the extension in release mode, starts a throwaway cluster,
# loads keys, runs every workload with pgbench (prepared protocol, unix socket) and in
# process, and writes BENCHMARKS.md with medians, min/max and ratios to baselines
# measured in the same run.
#   ./bench/run.sh                 # BENCH_RUNS=3 BENCH_SECONDS=5 by default
#   BENCH_ONLY='verify_hot|verify_quota|bulk_diy' ./bench/run.sh   # only these workloads (pgbench, inproc_*, bulk_*), medians printed
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

BENCH_DIR="${PGAPIKEY_BENCH_DIR:-/tmp/pg_apikey_bench}"
PORT="${PGAPIKEY_BENCH_PORT:-28819}"
RUNS="${BENCH_RUNS:-3}"
SECONDS_PER_RUN="${BENCH_SECONDS:-5}"
BIG="${BENCH_BIG_KEYS:-1000000}"
DB=bench
SOCK="$BENCH_DIR/sock"
RESULTS="$BENCH_DIR/results.tsv"
SCRIPTS="$BENCH_DIR/scripts"

cleanup() { stop_cluster "$BENCH_DIR"; }
trap cleanup EXIT

ensure_deps
use_major "${PGAPIKEY_BENCH_MAJOR:-15}"
install_extension release
stop_cluster "$BENCH_DIR"
rm -rf "$BENCH_DIR"
init_cluster "$BENCH_DIR"
# Preloaded (usage analytics needs it), with analytics off for every workload but the
# *_usage ones, which turn it on (PGOPTIONS): both measured in the same runs. The writer
# runs only when asked, so that its writes fall in the usage_flush step, not in a workload
# (and the table holds the step's 10,000 counters without filling, which would wake it).
cat >>"$BENCH_DIR/data/postgresql.conf" <<'CONF'
shared_preload_libraries = 'pg_apikey'
apikey.usage_analytics = off
apikey.usage_flush_interval = 3600
apikey.usage_max_entries = 20000
CONF
start_cluster "$BENCH_DIR" "$PORT"
mkdir -p "$SCRIPTS"

psql_b() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }
psql_b -d postgres -c "CREATE DATABASE $DB"
log "loading 10,000 keys per table"
psql_b -d "$DB" -v diy="$ROOT/bench/diy.sql" -v total=10000 -f "$ROOT/bench/load.sql"

# CASE :client_id WHEN 0 THEN '<key 0>' … END: each pgbench client uses its own key, with
# the same (negligible) cost in every workload and baseline.
key_case() {
    local kind="$1" expr="CASE :client_id::int"
    while IFS=$'\t' read -r i key; do
        expr+=" WHEN $i THEN '$key'"
    done < <(psql_b -d "$DB" -At -F $'\t' -c "SELECT i, key FROM bench.keys WHERE kind = '$kind' ORDER BY i")
    echo "$expr END"
}
one_key() { psql_b -d "$DB" -At -c "SELECT key FROM bench.keys WHERE kind = '$1' AND i = 0"; }

floor_sql() {
    echo "SELECT k.id, k.org_id, k.user_id, k.name, k.permissions, k.metadata, k.remaining, k.expires_at FROM apikey.keys k WHERE k.digest = sha256(convert_to($1, 'UTF8'));"
}
echo "SELECT 1;" > "$SCRIPTS/select1.sql"
floor_sql "$(key_case plain)" > "$SCRIPTS/floor.sql"
floor_sql "$(key_case garbage)" > "$SCRIPTS/floor_garbage.sql"
for kind in plain quota rate garbage; do
    echo "SELECT * FROM apikey.verify_api_key($(key_case $kind));" > "$SCRIPTS/verify_$kind.sql"
    echo "SELECT * FROM diy.verify($(key_case diy_$kind));" > "$SCRIPTS/diy_$kind.sql"
done
echo "SELECT * FROM apikey.verify_api_key('$(one_key hot)');" > "$SCRIPTS/verify_hot.sql"
for kind in metered metered_owner; do
    echo "SELECT * FROM apikey.verify_api_key($(key_case $kind), cost => 3);" > "$SCRIPTS/verify_$kind.sql"
done
# Required permissions on plain keys (granted {"api": ["read", "write"]}): the object shape,
# and a two-level query that is met by its second branch.
echo "SELECT * FROM apikey.verify_api_key($(key_case plain), '{\"api\": [\"read\"]}');" > "$SCRIPTS/verify_req_object.sql"
echo "SELECT * FROM apikey.verify_api_key($(key_case plain), '{\"\$any\": [{\"admin\": [\"read\"]}, {\"\$all\": [{\"api\": [\"read\"]}, {\"api\": [\"write\"]}]}]}');" > "$SCRIPTS/verify_req_query.sql"
echo "SELECT * FROM diy.verify('$(one_key diy_hot)');" > "$SCRIPTS/diy_hot.sql"

printf 'phase\tworkload\tclients\trun\tvalue\tunit\n' > "$RESULTS"

# pgbench NAME SCRIPT CLIENTS RUN [extra env]: records transactions per second.
bench() {
    local name="$1" script="$2" clients="$3" run="$4" phase="$5"
    local jobs=$(( clients < 2 ? clients : 2 ))
    local out tps txs lsn wal
    [[ -z "${BENCH_ONLY:-}" || "$name" =~ ^($BENCH_ONLY)$ ]] || return 0
    # WAL written per transaction: the WAL position around the run over the transactions
    # pgbench completed (the cluster has no other client; background writes are included).
    lsn=$(psql_b -d "$DB" -At -c "SELECT pg_current_wal_insert_lsn()")
    out=$(PGOPTIONS="${BENCH_PGOPTIONS:-}" "$PG_BIN/pgbench" -n -M prepared -h "$SOCK" -p "$PORT" -U postgres \
            -c "$clients" -j "$jobs" -T "$SECONDS_PER_RUN" -f "$SCRIPTS/$script.sql" "$DB" 2>&1)
    tps=$(awk '/^tps = / {print $3; exit}' <<< "$out")
    txs=$(awk -F': ' '/^number of transactions actually processed/ {split($2, n, "/"); print n[1]; exit}' <<< "$out")
    [ -n "$tps" ] && [ -n "$txs" ] && [ "$txs" -gt 0 ] || { echo "pgbench $name produced no tps: $out" >&2; exit 1; }
    wal=$(psql_b -d "$DB" -At -c "SELECT round(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn') / $txs, 1)")
    printf '%s\t%s\t%s\t%s\t%s\ttps\n' "$phase" "$name" "$clients" "$run" "$tps" >> "$RESULTS"
    printf '%s\t%s@wal\t%s\t%s\t%s\tbytes\n' "$phase" "$name" "$clients" "$run" "$wal" >> "$RESULTS"
    printf '  %-28s c=%s run %s: %s tps, %s WAL bytes/tx\n' "$name" "$clients" "$run" "$tps" "$wal" >&2
}

inproc() {
    local what="$1" run="$2" phase="$3" ns
    [[ -z "${BENCH_ONLY:-}" || "inproc_$what" =~ ^($BENCH_ONLY)$ ]] || return 0
    ns=$(psql_b -d "$DB" -At -c "SELECT round(bench.inproc('$what', 100000)::numeric, 1)")
    printf '%s\tinproc_%s\t1\t%s\t%s\tns/verify\n' "$phase" "$what" "$run" "$ns" >> "$RESULTS"
    printf '  %-28s run %s: %s ns\n' "inproc_$what" "$run" "$ns" >&2
}

# The usage writer's write of 10,000 counters in one flush: 10,000 distinct keys verified
# once each with analytics on, then flush_usage(): its time and the WAL it wrote.
usage_flush() {
    local run="$1" out ms wal n
    [[ -z "${BENCH_ONLY:-}" || "usage_flush" =~ ^($BENCH_ONLY)$ ]] || return 0
    # (What the *_usage workloads counted is written first.)
    psql_b -d "$DB" -c "SELECT apikey.flush_usage()" -c "SET apikey.usage_analytics = on" \
        -c "SELECT count(*) FILTER (WHERE code = 'VALID') FROM (SELECT (SELECT code FROM apikey.verify_api_key(key)) AS code FROM bench.usage_keys OFFSET 0) v" >/dev/null
    out=$(psql_b -d "$DB" -At -F ' ' -c "SELECT pg_current_wal_insert_lsn(), clock_timestamp()" \
        -c "SELECT apikey.flush_usage()" -c "SELECT pg_current_wal_insert_lsn(), clock_timestamp()")
    read -r lsn0 t0a t0b <<<"$(sed -n 1p <<<"$out")"
    n=$(sed -n 2p <<<"$out")
    read -r lsn1 t1a t1b <<<"$(sed -n 3p <<<"$out")"
    # (Another round may have written some before flush_usage asked: then fewer.)
    [ "$n" -gt 9000 ] || { echo "usage_flush wrote $n counters, not 10000" >&2; exit 1; }
    ms=$(psql_b -d "$DB" -At -c "SELECT round(extract(epoch FROM '$t1a $t1b'::timestamptz - '$t0a $t0b'::timestamptz) * 1000, 1)")
    wal=$(psql_b -d "$DB" -At -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
    printf 'usage\tusage_flush_10000\t1\t%s\t%s\tms\n' "$run" "$ms" >> "$RESULTS"
    printf 'usage\tusage_flush_10000@wal\t1\t%s\t%s\tbytes\n' "$run" "$wal" >> "$RESULTS"
    printf '  %-28s run %s: %s ms, %s WAL bytes\n' "usage_flush_10000" "$run" "$ms" "$wal" >&2
}

bulk() {
    local what="$1" run="$2" rate
    [[ -z "${BENCH_ONLY:-}" || "bulk_$what" =~ ^($BENCH_ONLY)$ ]] || return 0
    rate=$(psql_b -d "$DB" -At -c "SELECT round(bench.bulk('$what', 100000)::numeric)")
    printf 'bulk\tbulk_%s\t1\t%s\t%s\tkeys/s\n' "$what" "$run" "$rate" >> "$RESULTS"
    printf '  %-28s run %s: %s keys/s\n' "bulk_$what" "$run" "$rate" >&2
}

# Runs are interleaved (every workload once, then again) so that drift on a shared
# machine spreads over all of them instead of biasing one.
for run in $(seq 1 "$RUNS"); do
    log "run $run of $RUNS (10,000 keys)"
    for c in 1 8; do
        bench select1 select1 "$c" "$run" small
        bench floor floor "$c" "$run" small
        bench verify_plain verify_plain "$c" "$run" small
        bench diy_plain diy_plain "$c" "$run" small
    done
    # Usage analytics on, right after its baseline (off) of the same run.
    BENCH_PGOPTIONS="-c apikey.usage_analytics=on" bench verify_plain_usage verify_plain 8 "$run" small
    bench verify_quota verify_quota 8 "$run" small
    bench diy_quota diy_quota 8 "$run" small
    bench verify_hot verify_hot 8 "$run" small
    BENCH_PGOPTIONS="-c apikey.usage_synchronous_commit=off" bench verify_hot_async verify_hot 8 "$run" small
    bench diy_hot diy_hot 8 "$run" small
    bench verify_rate verify_rate 8 "$run" small
    bench diy_rate diy_rate 8 "$run" small
    bench verify_metered verify_metered 8 "$run" small
    BENCH_PGOPTIONS="-c apikey.usage_analytics=on" bench verify_metered_usage verify_metered 8 "$run" small
    bench verify_metered_owner verify_metered_owner 8 "$run" small
    BENCH_PGOPTIONS="-c apikey.usage_synchronous_commit=off" bench verify_metered_owner_async verify_metered_owner 8 "$run" small
    bench verify_req_object verify_req_object 8 "$run" small
    bench verify_req_query verify_req_query 8 "$run" small
    bench verify_garbage verify_garbage 8 "$run" small
    bench floor_garbage floor_garbage 8 "$run" small
    bench diy_garbage diy_garbage 8 "$run" small
    inproc verify "$run" small
    inproc floor "$run" small
done


if [ -z "${BENCH_ONLY:-}" ]; then
    # A key without a valid checksum while imported keys are in use: one index probe by
    # digest (then refused), against the same workloads with none in use, in the same runs.
    log "imported keys in use: garbage keys"
    imported=$(psql_b -d "$DB" -At -c "SELECT apikey.import_api_key(sha256(convert_to('legacy-bench-key', 'UTF8')), org_id => 'bench')")
    for run in $(seq 1 "$RUNS"); do
        bench select1_imported select1 8 "$run" small
        bench verify_garbage_imported verify_garbage 8 "$run" small
        bench floor_garbage_imported floor_garbage 8 "$run" small
    done
    psql_b -d "$DB" -c "SELECT FROM apikey.revoke_api_key('$imported')"

    log "growing the keys tables to $BIG keys"
    psql_b -d "$DB" -c "SELECT bench.fill($BIG)" -c "VACUUM ANALYZE"
    for run in $(seq 1 "$RUNS"); do
        log "run $run of $RUNS ($BIG keys)"
        bench select1 select1 8 "$run" big
        bench floor floor 8 "$run" big
        bench verify_plain verify_plain 8 "$run" big
        bench diy_plain diy_plain 8 "$run" big
        inproc verify "$run" big
        inproc floor "$run" big
    done
fi

log "usage analytics: the writer's flush of 10,000 counters"
psql_b -d "$DB" -c "CREATE TABLE bench.usage_keys (key text)" >/dev/null
psql_b -d "$DB" -c "INSERT INTO bench.usage_keys SELECT k.key FROM generate_series(1, 10000) g, LATERAL apikey.create_api_key(org_id => 'bench', name => 'usage-' || g) k" >/dev/null
for run in $(seq 1 "$RUNS"); do
    usage_flush "$run"
done
SHMEM=$(psql_b -d "$DB" -At -c "SELECT size FROM pg_shmem_allocations WHERE name = 'pg_apikey usage counters'")
printf 'usage\tusage_shmem\t1\t1\t%s\tbytes\n' "$SHMEM" >> "$RESULTS"
printf 'usage\tusage_max_entries\t1\t1\t%s\tentries\n' "$(psql_b -d "$DB" -At -c "SHOW apikey.usage_max_entries")" >> "$RESULTS"

log "bulk provisioning"
for run in $(seq 1 "$RUNS"); do
    bulk pg_apikey "$run"
    bulk diy "$run"
done

if [ -n "${BENCH_ONLY:-}" ]; then
    # A quick look at the workloads BENCH_ONLY names (e.g. verify_hot|bulk_pg_apikey): medians only,
    # BENCHMARKS.md is left alone.
    python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
from collections import defaultdict
v = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    v[(r["workload"], r["clients"], r["unit"])].append(float(r["value"]))
for (w, c, u), xs in sorted(v.items()):
    print(f"{w:36} c={c:2} {statistics.median(xs):12,.1f} {u}")
PY
    exit 0
fi

SETTINGS=$(psql_b -d "$DB" -At -F '=' -c "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', 'wal_level', 'max_connections', 'jit') ORDER BY name" | paste -sd ' ')
PGVERSION=$(psql_b -d "$DB" -At -c "SHOW server_version")
python3 "$ROOT/bench/report.py" "$RESULTS" \
    --machine "$(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -srm)" \
    --postgres "$PGVERSION" --settings "$SETTINGS" \
    --runs "$RUNS" --seconds "$SECONDS_PER_RUN" --big "$BIG" > "$ROOT/BENCHMARKS.md"
log "wrote BENCHMARKS.md"
