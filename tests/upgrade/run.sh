#!/usr/bin/env bash
# The upgrade tests. Run by scripts/test.sh after the other layers (which leave the
# current build installed in every major); safe to run alone after them.
#
# 1. ALTER EXTENSION pg_apikey UPDATE, on every major, from every earlier release that
#    builds there (tests/upgrade/versions): build and install the release from a git
#    worktree of its commit, create a realistic data set with it (dataset.sql), record
#    what every key answers (answers.sql) and what the management functions list
#    (listing.sql), install the current build, check that verify answers the same with
#    the new library before the update (management functions raise 55000 until it), and
#    that both answer the same after it; run every management function on the old rows
#    (after.sql), check that a DBA's privileges on re-created functions survive
#    (privileges_*.sql), and compare the updated schema with a fresh install.
# 2. pg_upgrade of a database with pg_apikey from PostgreSQL 15 to every newer major:
#    the same data set, with a key's and an organization's count spread over budget
#    slots (slots.sql), the same answers, slots and totals after the move
#    (slots_check.sql), after.sql on the new major. Before that, on 15: the
#    least-privilege recipe (examples/least_privilege.sql) survives pg_dump/pg_restore
#    (recipe_check.sql); section 1 checks that it survives ALTER EXTENSION UPDATE.
# Every check prints "upgrade check ok: ..." (counted by scripts/test.sh); the first that
# fails stops the run with a diff or a message.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
HERE="$ROOT/tests/upgrade"
WORK="${PGAPIKEY_UPGRADE_DIR:-/tmp/pg_apikey_upgrade}"
PORT="${PGAPIKEY_UPGRADE_PORT:-28960}"
CURRENT="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)"
RUNNING=()
cleanup() { local d; for d in "${RUNNING[@]}"; do stop_cluster "$d"; done; }
trap cleanup EXIT

ok() { echo "upgrade check ok: $*"; }
fail() { echo "upgrade check FAILED: $*" >&2; exit 1; }

start() { start_cluster "$1" "$2"; RUNNING+=("$1"); }

# same_output WHAT EXPECTED ACTUAL: fail with the diff when the files differ.
same_output() {
    if ! diff -u "$2" "$3" >"$WORK/last.diff"; then
        cat "$WORK/last.diff" >&2
        fail "$1"
    fi
    ok "$1"
}

# run_checks DIR PORT DB: after.sql, whose checks say "upgrade check ok: ..." as notices.
run_checks() {
    if ! psql_at "$1" "$2" -d "$3" -f "$HERE/after.sql" >"$WORK/after.out" 2>&1; then
        cat "$WORK/after.out" >&2
        fail "after.sql on $3"
    fi
    sed -n 's/^.*NOTICE:  //p' "$WORK/after.out"
}

# schema_dump DIR PORT DB OUT: every object of the database's pg_apikey (pg_dump writes
# an extension's members out only in --binary-upgrade mode) and its configuration tables.
schema_dump() {
    local bin
    bin="$(pg_bin_of_cluster "$1")"
    # (The test's own table of plaintext keys is not the extension's.)
    "$bin/pg_dump" --schema-only --binary-upgrade --exclude-table=public.upgrade_keys \
        -h "$1/sock" -p "$2" -U postgres "$3" >"$4"
    psql_at "$1" "$2" -d "$3" -At -c "SELECT 'extension ' || extname || ' ' || extversion || ' config '
        || COALESCE((SELECT string_agg(c::regclass::text || ' WHERE ' || coalesce(w, ''), ', ' ORDER BY c::regclass::text)
                     FROM unnest(extconfig, extcondition) AS u(c, w)), '')
        FROM pg_extension WHERE extname = 'pg_apikey'" | sed 's/^/RECORD: /' >>"$4"
    # Effective privileges of every relation and function of the schema (NULL ACL = the
    # default ones), one line each.
    psql_at "$1" "$2" -d "$3" -At -c "
        SELECT 'privileges ' || c.oid::regclass || ': ' || coalesce((
                 SELECT string_agg(coalesce(g.rolname, 'PUBLIC') || '=' || a.privilege_type, ',' ORDER BY 1)
                   FROM aclexplode(coalesce(c.relacl, CASE WHEN c.relkind = 'S' THEN acldefault('s', c.relowner) ELSE acldefault('r', c.relowner) END)) a
                   LEFT JOIN pg_roles g ON g.oid = a.grantee), '')
          FROM pg_class c WHERE c.relnamespace = 'apikey'::regnamespace
        UNION ALL
        SELECT 'privileges ' || p.oid::regprocedure || ': ' || coalesce((
                 SELECT string_agg(coalesce(g.rolname, 'PUBLIC') || '=' || a.privilege_type, ',' ORDER BY 1)
                   FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                   LEFT JOIN pg_roles g ON g.oid = a.grantee), '')
          FROM pg_proc p WHERE p.pronamespace = 'apikey'::regnamespace
        ORDER BY 1" | sed 's/^/RECORD: /' >>"$4"
}

# same_schema WHAT DIR PORT DB: the schema of DB equals a fresh CREATE EXTENSION.
same_schema() {
    local what="$1" dir="$2" port="$3" db="$4"
    psql_at "$dir" "$port" -d postgres -c "DROP DATABASE IF EXISTS fresh_install" -c "CREATE DATABASE fresh_install"
    psql_at "$dir" "$port" -d fresh_install -c "CREATE EXTENSION pg_apikey"
    schema_dump "$dir" "$port" fresh_install "$WORK/fresh.schema"
    schema_dump "$dir" "$port" "$db" "$WORK/updated.schema"
    grep -q "CREATE TABLE apikey.keys" "$WORK/fresh.schema" || fail "the schema dump lists the extension's objects"
    grep -q "^RECORD: privileges apikey.keys: " "$WORK/fresh.schema" || fail "the schema dump records privileges"
    grep -q "^RECORD: extension pg_apikey .* config apikey\." "$WORK/fresh.schema" || fail "the schema dump records the config tables"
    if ! python3 "$HERE/schema.py" "$WORK/fresh.schema" "$WORK/updated.schema" >"$WORK/schema.diff"; then
        cat "$WORK/schema.diff" >&2
        fail "$what: schema equals a fresh install of $CURRENT"
    fi
    ok "$what: schema equals a fresh install of $CURRENT"
}

# A git worktree of an earlier release's commit.
release_tree() {
    local version="$1" commit="$2" tree="$ROOT/target/releases/$1"
    if [ "$(git -C "$tree" rev-parse HEAD 2>/dev/null)" != "$commit" ]; then
        rm -rf "$tree"
        git -C "$ROOT" worktree prune
        # A shallow clone lacks the release's commit: deepen it from its origin first.
        git -C "$ROOT" cat-file -e "$commit^{commit}" 2>/dev/null ||
            git -C "$ROOT" fetch --quiet --unshallow 2>/dev/null || true
        git -C "$ROOT" cat-file -e "$commit^{commit}" 2>/dev/null ||
            fail "release $version: commit $commit is not in this clone (a shallow clone? fetch its history)"
        git -C "$ROOT" worktree add --detach --force "$tree" "$commit" >/dev/null 2>&1
    fi
    echo "$tree"
}

# Earlier releases that build on MAJOR, as "version commit" lines.
releases_for() {
    awk -v m="$1" '!/^#/ && NF >= 3 { for (i = 3; i <= NF; i++) if ($i == m) print $1, $2 }' "$HERE/versions"
}

rm -rf "$WORK"
mkdir -p "$WORK"

# ---------------------------------------------------------------- 1. ALTER EXTENSION UPDATE
for major in "${PG_MAJORS[@]}"; do
    use_major "$major"
    releases="$(releases_for "$major")"
    if [ -z "$releases" ]; then
        log "PostgreSQL $major: no earlier release builds on this major; its updates are tested from the next release on"
        continue
    fi
    while read -r version commit; do
        log "PostgreSQL $major: update from $version ($commit) to $CURRENT"
        dir="$WORK/update-$version-pg$major"
        tree="$(release_tree "$version" "$commit")"
        grep -q "^version = \"$version\"" "$tree/Cargo.toml" || fail "release $version: $commit is not version $version"
        # Its own target directory: built in the current one, the release's library would
        # be found fresh and the current build's library, linked in place, installed as it.
        CARGO_TARGET_DIR="$ROOT/target/releases/build-$version-pg$major" install_extension "" "$tree"
        init_cluster "$dir"
        start "$dir" "$PORT"
        psql_at "$dir" "$PORT" -d postgres -c "CREATE DATABASE upgraded"
        psql_at "$dir" "$PORT" -d upgraded -c "CREATE EXTENSION pg_apikey VERSION '$version'"
        psql_at "$dir" "$PORT" -d upgraded -f "$HERE/dataset.sql" >/dev/null
        psql_at "$dir" "$PORT" -d upgraded -f "$HERE/answers.sql" >"$WORK/answers.before"
        grep -q "quota_part_spent | t     | VALID" "$WORK/answers.before" || fail "the data set was built"
        psql_at "$dir" "$PORT" -d upgraded -f "$HERE/listing.sql" >"$WORK/listing.before"
        psql_at "$dir" "$PORT" -d postgres -c "CREATE DATABASE privileges"
        psql_at "$dir" "$PORT" -d privileges -v version="$version" -f "$HERE/privileges_before.sql" >/dev/null
        # The least-privilege recipe, applied at the old release.
        psql_at "$dir" "$PORT" -d postgres -c "CREATE DATABASE recipe"
        psql_at "$dir" "$PORT" -d recipe -c "CREATE EXTENSION pg_apikey VERSION '$version'"
        psql_at "$dir" "$PORT" -d recipe -f "$ROOT/examples/least_privilege.sql" >/dev/null
        # A package upgrade: stop, replace the library and the scripts, start.
        stop_cluster "$dir"
        install_extension
        start "$dir" "$PORT"
        # The new library serves the old SQL definitions until the update has run.
        psql_at "$dir" "$PORT" -d upgraded -f "$HERE/answers.sql" >"$WORK/answers.library"
        same_output "$version: the new library answers as the old one before ALTER EXTENSION UPDATE" \
            "$WORK/answers.before" "$WORK/answers.library"
        # Management functions need the update, and say so.
        state="$(psql_at "$dir" "$PORT" -d upgraded -At -v ON_ERROR_STOP=0 \
            -c "\\set VERBOSITY sqlstate" -c "SELECT count(*) FROM apikey.list_api_keys()" 2>&1 || true)"
        case "$state" in
            *55000*) ok "$version: before ALTER EXTENSION UPDATE, management functions raise 55000" ;;
            *) fail "$version: a management function before the update answered: $state" ;;
        esac
        # Also one whose arguments changed since (its old declaration names the old symbol).
        state="$(psql_at "$dir" "$PORT" -d upgraded -At -v ON_ERROR_STOP=0 \
            -c "\\set VERBOSITY sqlstate" -c "SELECT apikey.create_api_key(org_id => 'acme')" 2>&1 || true)"
        case "$state" in
            *55000*) ok "$version: before ALTER EXTENSION UPDATE, create_api_key (new arguments since) raises 55000" ;;
            *) fail "$version: create_api_key before the update answered: $state" ;;
        esac
        psql_at "$dir" "$PORT" -d upgraded -c "ALTER EXTENSION pg_apikey UPDATE"
        got="$(psql_at "$dir" "$PORT" -d upgraded -At -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_apikey'")"
        [ "$got" = "$CURRENT" ] || fail "ALTER EXTENSION UPDATE reaches $CURRENT (got $got)"
        ok "$version: ALTER EXTENSION pg_apikey UPDATE reaches $CURRENT"
        psql_at "$dir" "$PORT" -d upgraded -f "$HERE/answers.sql" >"$WORK/answers.after"
        same_output "$version: every key answers as before the update" "$WORK/answers.before" "$WORK/answers.after"
        psql_at "$dir" "$PORT" -d upgraded -f "$HERE/listing.sql" >"$WORK/listing.after"
        same_output "$version: keys, organizations and the audit trail read as before the update" \
            "$WORK/listing.before" "$WORK/listing.after"
        run_checks "$dir" "$PORT" upgraded
        same_schema "$version on PostgreSQL $major" "$dir" "$PORT" upgraded
        psql_at "$dir" "$PORT" -d privileges -c "ALTER EXTENSION pg_apikey UPDATE"
        psql_at "$dir" "$PORT" -d privileges -f "$HERE/privileges_after.sql" 2>&1 | sed -n 's/^.*NOTICE:  //p'
        psql_at "$dir" "$PORT" -d recipe -c "ALTER EXTENSION pg_apikey UPDATE"
        psql_at "$dir" "$PORT" -d recipe -v since="$version" -f "$HERE/recipe_check.sql" 2>&1 | sed -n -e 's/^.*NOTICE:  //p' -e 's/^.*ERROR:  /ERROR: /p'
        # Run again after the update, as the recipe says: every function closed again.
        psql_at "$dir" "$PORT" -d recipe -f "$ROOT/examples/least_privilege.sql" >/dev/null
        psql_at "$dir" "$PORT" -d recipe -f "$HERE/recipe_check.sql" 2>&1 | sed -n -e 's/^.*NOTICE:  //p' -e 's/^.*ERROR:  /ERROR: /p'
        stop_cluster "$dir"
    done <<<"$releases"
done

# ---------------------------------------------------------------- 2. pg_upgrade across majors
old_major=15
newer=()
for major in "${PG_MAJORS[@]}"; do [ "$major" -gt "$old_major" ] && newer+=("$major"); done
if [ "${#newer[@]}" -gt 0 ]; then
    log "pg_upgrade: a database with pg_apikey $CURRENT on PostgreSQL $old_major"
    use_major "$old_major"
    old="$WORK/pg_upgrade-pg$old_major"
    init_cluster "$old"
    start "$old" "$PORT"
    psql_at "$old" "$PORT" -d postgres -c "CREATE DATABASE moved"
    psql_at "$old" "$PORT" -d moved -c "CREATE EXTENSION pg_apikey"
    psql_at "$old" "$PORT" -d moved -f "$HERE/dataset.sql" -f "$HERE/slots.sql" >/dev/null
    psql_at "$old" "$PORT" -d moved -f "$HERE/answers.sql" -f "$HERE/listing.sql" -f "$HERE/slots_check.sql" >"$WORK/moved.before"
    # The least-privilege recipe survives pg_dump and pg_restore.
    psql_at "$old" "$PORT" -d postgres -c "CREATE DATABASE recipe_dumped" -c "CREATE DATABASE recipe_restored"
    psql_at "$old" "$PORT" -d recipe_dumped -c "CREATE EXTENSION pg_apikey"
    psql_at "$old" "$PORT" -d recipe_dumped -f "$ROOT/examples/least_privilege.sql" >/dev/null
    psql_at "$old" "$PORT" -d recipe_dumped -c "SELECT apikey.create_organization('dumped')" \
        -c "SELECT apikey.create_api_key(org_id => 'dumped', remaining => 5)" >/dev/null
    as_pg "$PG_BIN/pg_dump" -h "$old/sock" -p "$PORT" -U postgres -Fc -f "$old/recipe.dump" recipe_dumped
    as_pg "$PG_BIN/pg_restore" -h "$old/sock" -p "$PORT" -U postgres -d recipe_restored "$old/recipe.dump"
    psql_at "$old" "$PORT" -d recipe_restored -f "$HERE/recipe_check.sql" 2>&1 | sed -n -e 's/^.*NOTICE:  //p' -e 's/^.*ERROR:  /ERROR: /p'
    [ "$(psql_at "$old" "$PORT" -d recipe_restored -At -c "SELECT count(*) FROM apikey.keys")" = 1 ] \
        || fail "pg_restore: the key of the dumped database"
    ok "pg_dump and pg_restore of a database with the least-privilege recipe: its key and privileges restored"
    grep -q "budget slots as made: true" "$WORK/moved.before" || fail "slots.sql: the budget slots and totals made before pg_upgrade"
    ok "a key's quota and an organization's spread over budget slots before pg_upgrade, totals 7 and 97"
    grep -q "usage rows as made: true" "$WORK/moved.before" || fail "slots.sql: the usage rows made before pg_upgrade"
    ok "three hourly usage rows (1,257 calls) before pg_upgrade"
    # Debian's 15.18 marks every column with an option that the newer majors' pg_dump
    # copies and their servers refuse (see strip_attver.sql); take it out first.
    for db in $(psql_at "$old" "$PORT" -d postgres -At -c "SELECT datname FROM pg_database WHERE datallowconn"); do
        psql_at "$old" "$PORT" -d "$db" -f "$HERE/strip_attver.sql" >/dev/null
    done
    stop_cluster "$old"
    for major in "${newer[@]}"; do
        log "pg_upgrade: PostgreSQL $old_major -> $major"
        use_major "$major"
        new="$WORK/pg_upgrade-pg$major"
        # PostgreSQL 18's initdb turns data checksums on; the 15 cluster has none.
        checksums=()
        [ "$major" -ge 18 ] && checksums=(--no-data-checksums)
        init_cluster "$new" "${checksums[@]}"
        if ! (cd "$new" && as_pg "$PG_BIN/pg_upgrade" -U postgres \
                -b "$(pg_prefix "$old_major")/bin" -B "$PG_BIN" -d "$old/data" -D "$new/data" \
                -s "$new/sock" -p $((PORT + 1)) -P $((PORT + 2)) >"$new/pg_upgrade.out" 2>&1); then
            cat "$new/pg_upgrade.out" >&2
            find "$new/data" -path '*pg_upgrade_output.d*' -name '*.txt' -exec cat {} + >&2 2>/dev/null || true
            fail "pg_upgrade from $old_major to $major"
        fi
        ok "pg_upgrade from PostgreSQL $old_major to $major"
        start "$new" "$PORT"
        psql_at "$new" "$PORT" -d moved -f "$HERE/answers.sql" -f "$HERE/listing.sql" -f "$HERE/slots_check.sql" >"$WORK/moved.after-pg$major"
        same_output "PostgreSQL $major after pg_upgrade: keys, members, role actions, settings, audit trail, budget slots and usage rows as on $old_major" \
            "$WORK/moved.before" "$WORK/moved.after-pg$major"
        run_checks "$new" "$PORT" moved
        same_schema "pg_upgrade to PostgreSQL $major" "$new" "$PORT" moved
        stop_cluster "$new"
    done
fi
log "upgrade tests passed"
