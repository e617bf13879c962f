#!/usr/bin/env bash
# Run pg_apikey's tests, from a machine that has never seen the project.
#
#   ./scripts/test.sh                   every layer on every major (what CI runs)
#   ./scripts/test.sh LAYER [MAJOR] [NAME…]
#   ./scripts/test.sh --help
#
# It first installs what is missing (Debian packages, the PyPI servers, cargo-pgrx 0.18.1,
# pgrx init for every major); when everything is present that takes a second. Each layer
# ends with its own "LAYER: N passed, N failed" line; a full run then prints what was
# counted per layer and per major, and closes with "pg_apikey: N passed, 0 failed".
# Exits non-zero as soon as a layer fails. Safe to re-run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LAYERS=(lint pgtest regress isolation integration faults clients better-auth upgrade packages)

usage() {
    cat <<'USAGE'
usage: ./scripts/test.sh [LAYER] [MAJOR] [NAME…]

With no argument: every layer below, on every supported major (15, 16, 18), as CI runs it.

LAYER, one of:
  lint          cargo fmt --check; cargo clippy (warnings, undocumented unsafe blocks and
                unsafe operations outside unsafe blocks are errors); the unit tests of the
                upgrade test's schema comparison; the link check of README.md, docs/ and
                CONTRIBUTING.md (tests/docs/check_links.py)
  pgtest        unit tests and #[pg_test]s (cargo pgrx test); NAME: a test-name filter
  regress       pg_regress files of tests/pg_regress on a scratch cluster, then
                examples/walkthrough.sql with its output compared (tests/walkthrough);
                NAME…: only these files (setup runs first by itself; "walkthrough")
  isolation     tests/isolation: isolationtester specs of interleaved sessions (verify
                against verify, revoke, rotate, update, set_owner_limits, DML, REINDEX);
                NAME…: only these specs
  integration   tests/integration, several roles over real connections; NAME…: filters
  faults        tests/faults (kill -9, standby, fuzz, maintenance, open transactions),
                on 15 and 18; NAME: one group (crash-usage, crash-create, standby,
                fuzz-keys, fuzz-json, maintenance, open-txn, setters, usage, usage-standby)
  clients       tests/clients: the Python, Node, Rust and Java examples, directly and
                through PgBouncer, on 15; NAME…: only these clients
  better-auth   tests/better_auth: keys made by better-auth, imported and verified, on 15
  upgrade       tests/upgrade: ALTER EXTENSION UPDATE from every release, pg_upgrade
  packages      scripts/package.sh (release .deb for 15, tarballs for 15, 16, 18), then
                tests/packages: the .deb with dpkg -i/-r on 15, the 18 tarball through
                extension_control_path, pg_regress on each

MAJOR: 15, 16 or 18 (default, or "all": every major the layer runs on).

Examples:
  ./scripts/test.sh regress 15 verify      setup and verify of pg_regress, on 15 only
  ./scripts/test.sh pgtest 18 metered      the #[pg_test]s whose name has "metered", on 18
  ./scripts/test.sh lint
USAGE
}

case "${1:-}" in
    -h | --help | help) usage; exit 0 ;;
esac

LAYER="${1:-all}"
ONLY_MAJOR="${2:-all}"
shift $(($# < 2 ? $# : 2))
NAMES=("$@")
if [ "$LAYER" != all ] && [[ ! " ${LAYERS[*]} " =~ " $LAYER " ]]; then
    echo "unknown layer '$LAYER'" >&2
    usage >&2
    exit 2
fi
case "$ONLY_MAJOR" in
    all) ;;
    *) if [[ ! " ${ALL_MAJORS[*]} " =~ " $ONLY_MAJOR " ]]; then
           echo "unknown major '$ONLY_MAJOR' (supported: ${ALL_MAJORS[*]})" >&2
           exit 2
       fi
       PG_MAJORS=("$ONLY_MAJOR") ;;
esac

TEST_BASE="${PGAPIKEY_TEST_DIR:-/tmp/pg_apikey_test}"
PORT_BASE="${PGAPIKEY_TEST_PORT_BASE:-28900}"
WORK="$(mktemp -d)"
TALLY="$WORK/tally"          # "layer major count" per layer run
: >"$TALLY"
CURRENT_CLUSTER=""
INSTALLED=" "
cleanup() { [ -n "$CURRENT_CLUSTER" ] && stop_cluster "$CURRENT_CLUSTER"; rm -rf "$WORK"; }
trap cleanup EXIT
started=$(date +%s)

# count LAYER FILE: how many checks passed in FILE, read the way that layer prints them.
count() {
    local file="$2"
    case "$1" in
        lint)
            echo $(($(grep -Eo '^Ran [0-9]+ test' "$file" | awk '{s += $2} END {print s + 0}') +
                $(grep -Eo '^docs-links: [0-9]+ passed' "$file" | awk '{s += $2} END {print s + 0}') +
                $(grep -Ec '^lint check ok: ' "$file" || true))) ;;
        pgtest | integration)
            grep -Eo 'test result: ok\. [0-9]+ passed' "$file" | awk '{s += $4} END {print s + 0}' ;;
        # pg_regress 15 prints "test name ... ok"; 16 and later print TAP ("ok 1 - name").
        regress) grep -Ec '^(ok|test) .*[. ] ok |^ok [0-9]+ +- |^walkthrough check ok: ' "$file" || true ;;
        isolation) grep -Ec '^isolation check ok: ' "$file" || true ;;
        faults) grep -Ec '^fault check ok: ' "$file" || true ;;
        clients) grep -Ec '^client check ok: ' "$file" || true ;;
        better-auth) grep -Ec '^better-auth check ok: ' "$file" || true ;;
        upgrade) grep -Ec '^upgrade check ok: ' "$file" || true ;;
        packages) grep -Ec '^package check ok: |^(ok|test) .*[. ] ok |^ok [0-9]+ +- ' "$file" || true ;;
    esac
}

# run_layer LAYER MAJOR COMMAND…: run one layer's command, keep its output, and close
# with "LAYER: N passed, N failed" (a failed command counts one failure and stops the run).
run_layer() {
    local layer="$1" major="$2" out n rc=0
    shift 2
    out="$WORK/$layer-$major.out"
    # errexit holds inside the layer (a subshell not tested by || or if), and its status
    # is read from PIPESTATUS.
    set +e
    (set -e; "$@") 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    set -e
    n=$(count "$layer" "$out")
    if [ "$rc" != 0 ]; then
        echo "$layer: $n passed, 1 failed"
        log "FAILED: $layer on PostgreSQL $major (exit $rc)"
        exit 1
    fi
    if [ "$n" = 0 ]; then
        echo "$layer: 0 passed, 1 failed"
        log "FAILED: $layer on PostgreSQL $major ran no check"
        exit 1
    fi
    echo "$layer $major $n" >>"$TALLY"
    echo "$layer: $n passed, 0 failed"
}

# The extension, built from this tree, installed into $major's server (once per run).
install_for() {
    use_major "$1"
    case "$INSTALLED" in *" $1 "*) return ;; esac
    install_extension
    INSTALLED+="$1 "
}

# A scratch cluster of $major with the extension installed, on a private port.
cluster_for() {
    local major="$1"
    install_for "$major"
    CLUSTER_DIR="$TEST_BASE-pg$major"
    CLUSTER_PORT=$((PORT_BASE + major))
    log "PostgreSQL $major: scratch cluster in $CLUSTER_DIR on port $CLUSTER_PORT"
    stop_cluster "$CLUSTER_DIR"
    init_cluster "$CLUSTER_DIR"
    start_cluster "$CLUSTER_DIR" "$CLUSTER_PORT"
    CURRENT_CLUSTER="$CLUSTER_DIR"
}

release_cluster() {
    stop_cluster "$CLUSTER_DIR"
    CURRENT_CLUSTER=""
}

lint() {
    log "lint: cargo fmt --check"
    (cd "$ROOT" && cargo fmt --all --check)
    echo "lint check ok: cargo fmt"
    log "lint: cargo clippy (warnings, undocumented unsafe blocks and unsafe ops are errors)"
    (use_major 15 && cd "$ROOT" && cargo clippy --workspace --all-targets --features "pg15 pg_test" -- \
        -D warnings -D clippy::undocumented_unsafe_blocks -D clippy::missing_safety_doc \
        -D unsafe_op_in_unsafe_fn)
    echo "lint check ok: cargo clippy"
    log "lint: unit tests of the schema comparison (tests/upgrade/schema.py)"
    (cd "$ROOT/tests/upgrade" && python3 -m unittest -v test_schema 2>&1)
    log "lint: relative links of README.md, CONTRIBUTING.md and docs/"
    python3 "$ROOT/tests/docs/check_links.py"
    log "lint: the psycopg snippet of docs/application-developers.md is the file the clients layer runs"
    if python3 - "$ROOT" <<'PY'
import sys
root = sys.argv[1]
snippet = open(f"{root}/examples/clients/python/snippet.py").read()
doc = open(f"{root}/docs/application-developers.md").read()
sys.exit(0 if f"```python\n{snippet}```" in doc else 1)
PY
    then
        echo "lint check ok: docs/application-developers.md shows examples/clients/python/snippet.py verbatim"
    else
        echo "lint check FAILED: docs/application-developers.md does not show examples/clients/python/snippet.py verbatim"
        return 1
    fi
}

pgtest() {
    local major="$1" dir="$TEST_BASE-pg$1-pgrx"
    use_major "$major"
    log "PostgreSQL $major: unit tests and #[pg_test]s (cargo pgrx test pg$major ${NAMES[*]})"
    rm -rf "$dir"
    if [ "$(id -u)" = 0 ]; then
        (cd "$ROOT" && cargo pgrx test "pg$major" "${NAMES[@]}" --runas postgres --pgdata "$dir")
    else
        (cd "$ROOT" && cargo pgrx test "pg$major" "${NAMES[@]}")
    fi
    rm -rf "$dir"
}

regress() {
    local major="$1" regress out selection=()
    regress="$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress"
    out="$CLUSTER_DIR/regress"
    mkdir -p "$out"
    local walk=1
    local preloaded=1
    if [ "${#NAMES[@]}" -gt 0 ]; then
        selection=(setup)
        walk=0
        preloaded=0
        for n in "${NAMES[@]}"; do
            case "$n" in
                setup) ;;
                walkthrough) walk=1 ;;
                usage) preloaded=1 ;;
                *) selection+=("$n") ;;
            esac
        done
    else
        selection=(--schedule="$ROOT/tests/pg_regress/schedule")
    fi
    log "PostgreSQL $major: pg_regress (tests/pg_regress) ${NAMES[*]}"
    # From the repository root: the files include examples/*.sql by that relative path.
    cd "$ROOT"
    if ! "$regress" --bindir="$PG_BIN" --host="$CLUSTER_DIR/sock" --port="$CLUSTER_PORT" \
            --user=postgres --inputdir="$ROOT/tests/pg_regress" --outputdir="$out" \
            --dbname=pg_apikey_regress "${selection[@]}"; then
        cat "$out/regression.diffs" >&2 || true
        return 1
    fi
    if [ "$preloaded" = 1 ]; then regress_preloaded "$major" "$regress"; fi
    if [ "$walk" = 1 ]; then walkthrough "$major"; fi
}

# The pg_regress files that need pg_apikey in shared_preload_libraries (usage analytics),
# on a cluster of their own: the schedule's cluster loads the library per session, as a
# server without analytics does (security.sql shows what that means for placeholders).
regress_preloaded() {
    local major="$1" regress="$2" dir="$CLUSTER_DIR-preloaded" port=$((CLUSTER_PORT + 30)) out
    out="$dir/regress"
    log "PostgreSQL $major: pg_regress usage, pg_apikey preloaded ($dir, port $port)"
    stop_cluster "$dir"
    init_cluster "$dir"
    # The writer's periodic rounds far apart: the test asks for its writes (flush_usage).
    cat >>"$dir/data/postgresql.conf" <<'CONF'
shared_preload_libraries = 'pg_apikey'
apikey.usage_flush_interval = 3600
CONF
    start_cluster "$dir" "$port"
    mkdir -p "$out"
    local rc=0
    "$regress" --bindir="$PG_BIN" --host="$dir/sock" --port="$port" --user=postgres \
        --inputdir="$ROOT/tests/pg_regress" --outputdir="$out" --dbname=pg_apikey_regress setup usage || rc=$?
    if [ "$rc" != 0 ]; then cat "$out/regression.diffs" >&2 || true; fi
    stop_cluster "$dir"
    return "$rc"
}

# The quick start's walkthrough (examples/walkthrough.sql), as ./scripts/demo.sh runs it
# (ON_ERROR_STOP=1), in a database of its own: what it prints, with the random parts of
# keys, digests and ids masked, must be tests/walkthrough/expected.out.
walkthrough() {
    local major="$1" out="$CLUSTER_DIR/walkthrough.out"
    log "PostgreSQL $major: examples/walkthrough.sql, output compared with tests/walkthrough/expected.out"
    psql_at "$CLUSTER_DIR" "$CLUSTER_PORT" -d postgres -c "CREATE DATABASE apikey_walkthrough"
    (cd "$ROOT" && "$PG_BIN/psql" -X -h "$CLUSTER_DIR/sock" -p "$CLUSTER_PORT" -U postgres \
        -d apikey_walkthrough -v ON_ERROR_STOP=1 -f examples/walkthrough.sql) 2>&1 |
        sed -E -e 's/[0-9a-f]{64}/<sha256>/g' \
            -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uuid>/g' \
            -e 's/(ak_|dp_live_)[A-Za-z0-9]{4,}/\1<random>/g' >"$out"
    if ! diff -u "$ROOT/tests/walkthrough/expected.out" "$out"; then
        echo "walkthrough check FAILED: examples/walkthrough.sql printed something else (diff above)"
        return 1
    fi
    echo "walkthrough check ok: examples/walkthrough.sql on PostgreSQL $major, as expected"
}

integration() {
    local major="$1"
    log "PostgreSQL $major: integration tests, several roles over real connections"
    psql_at "$CLUSTER_DIR" "$CLUSTER_PORT" -d postgres -c "CREATE DATABASE pg_apikey_it" \
        -c "\\c pg_apikey_it" -c "CREATE EXTENSION pg_apikey"
    # A client program: built once (its own target directory), run against every major.
    (cd "$ROOT" && CARGO_TARGET_DIR="$ROOT/target/client" PGAPIKEY_TEST_HOST="$CLUSTER_DIR/sock" \
        PGAPIKEY_TEST_PORT="$CLUSTER_PORT" PGAPIKEY_TEST_DB=pg_apikey_it PGAPIKEY_TEST_BINDIR="$PG_BIN" \
        cargo test -p pg_apikey_integration -- "${NAMES[@]}")
}

isolation() {
    log "PostgreSQL $1: isolation specs (tests/isolation) ${NAMES[*]}"
    PGAPIKEY_ISOLATION_OUT="$CLUSTER_DIR/isolation" \
        "$ROOT/tests/isolation/run.sh" "$PG_CONFIG" "$CLUSTER_DIR/sock" "$CLUSTER_PORT" "${NAMES[@]}"
}

faults() {
    local only=()
    if [ "${#NAMES[@]}" -gt 0 ]; then only=(--only "${NAMES[0]}"); fi
    "$ROOT/tests/faults/run.sh" "$1" "${only[@]}"
}

# Which majors a layer runs on, of those asked for.
majors_of() {
    local m
    for m in "${PG_MAJORS[@]}"; do
        case "$1" in
            faults) [[ " 15 18 " =~ " $m " ]] && echo "$m" ;;  # the majors that ship amcheck
            clients | better-auth) [ "$m" = 15 ] && echo "$m" ;;
            *) echo "$m" ;;
        esac
    done
}

# run LAYER: that layer on each of its majors.
run() {
    local layer="$1" major
    case "$layer" in
        lint) run_layer lint all lint ;;
        upgrade)
            # The upgrade test expects the current build installed in every major.
            for major in "${ALL_MAJORS[@]}"; do install_for "$major"; done
            log "upgrade tests (tests/upgrade/run.sh)"
            run_layer upgrade all "$ROOT/tests/upgrade/run.sh" ;;
        packages)
            # Builds the release packages (scripts/package.sh) and installs them; puts the
            # development build back afterwards.
            log "release packages (scripts/package.sh, tests/packages/run.sh)"
            run_layer packages all "$ROOT/tests/packages/run.sh" ;;
        *)
            for major in $(majors_of "$layer"); do run_major "$layer" "$major"; done ;;
    esac
}

run_major() {
    local layer="$1" major="$2"
    case "$layer" in
        pgtest) run_layer pgtest "$major" pgtest "$major" ;;
        regress | isolation | integration)
            cluster_for "$major"
            run_layer "$layer" "$major" "$layer" "$major"
            release_cluster ;;
        faults)
            install_for "$major"
            log "PostgreSQL $major: fault tests (tests/faults/run.sh)"
            run_layer faults "$major" faults "$major" ;;
        clients)
            install_for "$major"
            log "application clients: Python, Node, Rust, Java, directly and through PgBouncer"
            run_layer clients "$major" "$ROOT/tests/clients/run.sh" "${NAMES[@]}" ;;
        better-auth)
            install_for "$major"
            log "PostgreSQL $major: moving from better-auth (tests/better_auth/run.sh)"
            run_layer better-auth "$major" "$ROOT/tests/better_auth/run.sh" ;;
    esac
}

ensure_deps

if [ "$LAYER" = all ]; then
    run lint
    for major in "${PG_MAJORS[@]}"; do
        run_major pgtest "$major"
        # pg_regress, the isolation specs and the integration tests share one scratch
        # cluster per major.
        cluster_for "$major"
        run_layer regress "$major" regress "$major"
        run_layer isolation "$major" isolation "$major"
        run_layer integration "$major" integration "$major"
        release_cluster
    done
    for layer in faults clients better-auth upgrade packages; do run "$layer"; done
else
    run "$LAYER"
fi

# What was counted, per layer and per major (a Rust test counts once per major it ran
# on; a pg_regress file once per major, however many statements it checks).
log "counted, per layer and major, in $(($(date +%s) - started)) s:"
awk '{n[$1] += $3; per[$1] = per[$1] sprintf(" %s=%s", $2, $3); if (!($1 in seen)) {seen[$1] = 1; order[++k] = $1}}
     END {for (i = 1; i <= k; i++) printf "  %-12s %6d  (%s )\n", order[i], n[order[i]], per[order[i]]}' "$TALLY" >&2
total=$(awk '{s += $3} END {print s + 0}' "$TALLY")
echo "pg_apikey: $total passed, 0 failed"
