#!/usr/bin/env bash
# Fault-injection tests for pg_apikey, against the build already installed into the
# server of one PostgreSQL major. Nothing is built here.
#
#   tests/faults/run.sh [MAJOR] [--only GROUP]     MAJOR: 15 (default), 16 or 18
#
# Each group runs in its own fresh cluster(s) under /tmp/pg_apikey_faults-pgMAJOR, on
# unix sockets and 127.0.0.1 ports 28970-28975 (two per major), driven by
# tests/faults/faults.py (psycopg 3, in a virtual environment made here once):
#
#   crash-usage   kill -9 of the postmaster and all its children while 16 clients verify
#                 one hot quota key, and again while they verify 8 keys sharing their
#                 organization's quota (both spread over budget slots): after crash
#                 recovery no acknowledged use is lost (acknowledged <= recorded <=
#                 acknowledged + in-flight), 16 clients then drain exactly what is left,
#                 and 8 clients racing on update_api_key(remaining => 20) get 20 VALID.
#                 Again with apikey.usage_synchronous_commit = off: the loss is printed
#                 and must not exceed what was acknowledged in the last 0.6 s (3 × wal_writer_delay).
#   crash-create  kill -9 while clients create and rotate (grace 1 hour) keys: every key
#                 a client received verifies VALID, audit rows and keys match one to one,
#                 amcheck (B-tree indexes with heapallindexed, heap) finds nothing.
#   standby       pg_basebackup -R to a hot standby: plain keys verify VALID there, keys
#                 with a quota or rate limit raise 25006; a revoke and a new key on the
#                 primary are answered KEY_NOT_FOUND / VALID once replayed.
#   fuzz-keys     seeded: random strings and mutations of real keys (one character
#                 changed, inserted, deleted, truncations, other prefixes, unicode, 10k
#                 long, forged keys with a correct checksum) answer one KEY_NOT_FOUND row.
#   fuzz-json     seeded: random jsonb for verify's required_permissions and for
#                 create_api_key's permissions and metadata (huge and precise numbers,
#                 1e400, 140 levels of nesting, unicode escapes): only VALID /
#                 INSUFFICIENT_PERMISSIONS (as jsonb containment says) or 22023 for a
#                 malformed shape, and what is stored reads back equal as jsonb.
#   maintenance   REINDEX, VACUUM FULL, ANALYZE, CREATE/DROP INDEX on apikey.keys while 4
#                 clients verify plain and quota keys: no error anywhere, exact counts,
#                 amcheck clean; and the REINDEX deadlock repro (one statement verifying
#                 a plain key, sleeping 2 s, verifying a quota key; REINDEX 0.5 s in).
#   setters       16 clients verify one hot key (then 8 keys sharing an organization's
#                 quota) without pause while update_api_key(remaining => 200) (then
#                 set_owner_limits) sets the total, 5 rounds each: every round admits
#                 exactly 200 (calls started after the set <= 200 <= calls ended after it
#                 was sent), leaves 0, and no client gets an error.
#   open-txn      with last_used_resolution = 0, a plain key verified in another
#                 session's open transaction verifies VALID at once (lock_timeout 2s);
#                 a quota verify rolled back gives the use back.
#   usage         (usage analytics; pg_apikey in shared_preload_libraries) 8 clients x 200
#                 verifies of a plain, a quota and a made-up key: key_usage counts every
#                 call by code and cost, the same before and after flush_usage; a plain
#                 verify changes no row; a clean restart keeps the unwritten counts, kill -9
#                 loses exactly those (printed); retention deletes old rows; the periodic
#                 round; DROP/CREATE EXTENSION and a dropped database; usage_max_entries =
#                 100 with 150 keys: 100 counters + 50 calls in OVERFLOW, the writer woken.
#   usage-standby a preloaded hot standby counts its verifies in memory (usage_live,
#                 key_usage there), flush_usage raises 25006, nothing reaches the primary.
#
# Every check prints "fault check ok: ..."; a group stops at its first failure
# ("fault check FAILED: ..."). The run goes on with the next group and ends with one
# "fault summary:" line per group; it exits non-zero when any group failed.
# FAULTS_SEED=N replays the fuzz groups. FAULTS_KEEP=1 keeps the clusters' logs.

source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
HERE="$ROOT/tests/faults"
VENV="${PGAPIKEY_FAULTS_VENV:-$PG_WHEEL_HOME/faults-venv}"
GROUPS_ALL=(crash-usage crash-create standby fuzz-keys fuzz-json maintenance open-txn setters usage usage-standby)

# Is DIR one of ours? Only such directories are ever stopped or removed.
ours() { case "$1" in /tmp/pg_apikey_faults*) return 0 ;; *) return 1 ;; esac; }

# stop_dir DIR: stop the cluster in DIR; if pg_ctl cannot, kill -9 the postmaster named
# by DIR/data/postmaster.pid when that process really serves DIR/data (its children
# exit with it).
stop_dir() {
    local dir="$1" pid
    ours "$dir" || return 0
    stop_cluster "$dir"
    pid="$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$dir/data"; then
        kill -9 "$pid" 2>/dev/null || true
    fi
}

# ---------------------------------------------------------------- callbacks for faults.py
# run.sh --ctl MAJOR ACTION ARGS: cluster operations through scripts/lib.sh.
if [ "${1:-}" = --ctl ]; then
    use_major "$2"
    action="$3"
    shift 3
    for d in "$@"; do case "$d" in /*) ours "$d" || { echo "not a fault-test directory: $d" >&2; exit 2; } ;; esac; done
    case "$action" in
        init) init_cluster "$1" ;;
        start) start_cluster "$1" "$2" ;;
        stop) stop_dir "$1" ;;
        basebackup) # basebackup FROM_DIR FROM_PORT TO_DIR: a standby of FROM in TO/data
            rm -rf "$3"
            mkdir -p "$3/sock"
            [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$3"
            as_pg "$PG_BIN/pg_basebackup" -D "$3/data" -R -X stream -c fast -h "$1/sock" -p "$2" -U postgres
            ;;
        *) echo "unknown action $action" >&2; exit 2 ;;
    esac
    exit 0
fi

# ---------------------------------------------------------------- arguments
MAJOR=15
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY="${2:?--only needs a group name}"; shift 2 ;;
        --only=*) ONLY="${1#--only=}"; shift ;;
        [0-9]*) MAJOR="$1"; shift ;;
        *) echo "usage: $0 [MAJOR] [--only GROUP]   groups: ${GROUPS_ALL[*]}" >&2; exit 2 ;;
    esac
done
if [ -n "$ONLY" ]; then
    printf '%s\n' "${GROUPS_ALL[@]}" | grep -qx -- "$ONLY" || { echo "unknown group $ONLY; groups: ${GROUPS_ALL[*]}" >&2; exit 2; }
    RUN_GROUPS=("$ONLY")
else
    RUN_GROUPS=("${GROUPS_ALL[@]}")
fi

use_major "$MAJOR"
[ -x "$PG_BIN/postgres" ] || { echo "fault check FAILED: no PostgreSQL $MAJOR server in $PG_BIN" >&2; exit 1; }
[ -x "$PG_BIN/pg_basebackup" ] || { echo "fault check FAILED: no pg_basebackup in $PG_BIN" >&2; exit 1; }
EXT_DIR="$("$PG_CONFIG" --sharedir)/extension"
[ -f "$EXT_DIR/pg_apikey.control" ] ||
    { echo "fault check FAILED: pg_apikey is not installed into PostgreSQL $MAJOR ($EXT_DIR); build and install it first" >&2; exit 1; }
[ -f "$EXT_DIR/amcheck.control" ] ||
    echo "fault check FAILED: amcheck is missing for PostgreSQL $MAJOR ($EXT_DIR): crash-usage, crash-create and maintenance will fail" >&2
case "$MAJOR" in 15) slot=0 ;; 16) slot=1 ;; 18) slot=2 ;; *) slot=3 ;; esac
export FAULTS_MAJOR="$MAJOR"
export FAULTS_WORK="/tmp/pg_apikey_faults-pg$MAJOR"
export FAULTS_PORT="$((28970 + 2 * slot))"   # primary; the standby uses FAULTS_PORT + 1
export FAULTS_CTL="$HERE/run.sh"

# ---------------------------------------------------------------- python environment
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    as_root mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c "import psycopg" 2>/dev/null ||
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "psycopg[binary]==3.3.9"

# ---------------------------------------------------------------- clusters and cleanup
stop_all() {
    local d
    for d in "$FAULTS_WORK"/*/; do
        [ -d "$d" ] && stop_dir "${d%/}"
    done
    return 0
}
cleanup() {
    stop_all
    [ "${FAULTS_KEEP:-0}" = 1 ] || rm -rf "$FAULTS_WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop_all # leftovers of an interrupted earlier run (ours, by data directory)
rm -rf "$FAULTS_WORK"
mkdir -p "$FAULTS_WORK"

# ---------------------------------------------------------------- groups
declare -A RESULT
started=$SECONDS
for group in "${RUN_GROUPS[@]}"; do
    log "PostgreSQL $MAJOR: fault group $group"
    t0=$SECONDS
    out="$FAULTS_WORK/$group.out"
    set +e
    timeout --signal=KILL 120 "$VENV/bin/python" -u "$HERE/faults.py" "$group" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    set -e
    if [ "$rc" = 0 ]; then
        RESULT[$group]="PASS ($((SECONDS - t0)) s)"
    else
        why="$(grep -m1 'fault check FAILED' "$out" || true)"
        [ -n "$why" ] || why="faults.py exited with status $rc: $(tail -n1 "$out")"
        RESULT[$group]="FAIL ($((SECONDS - t0)) s): ${why#fault check FAILED: }"
        for log_file in "$FAULTS_WORK"/*/server.log; do
            [ -f "$log_file" ] || continue
            echo "---- last lines of $log_file" >&2
            tail -n 15 "$log_file" >&2
        done
    fi
    stop_all
    for d in "$FAULTS_WORK"/*/; do [ -d "$d" ] && [ "${FAULTS_KEEP:-0}" != 1 ] && rm -rf "$d"; done
done

echo
failed=0
for group in "${RUN_GROUPS[@]}"; do
    echo "fault summary: $group: ${RESULT[$group]}"
    case "${RESULT[$group]}" in FAIL*) failed=1 ;; esac
done
echo "fault summary: PostgreSQL $MAJOR, $((SECONDS - started)) s"
exit "$failed"
