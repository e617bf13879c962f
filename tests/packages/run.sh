#!/usr/bin/env bash
# The release packages, built by scripts/package.sh and installed the two ways the README
# describes, each tested with the pg_regress suite:
#   1. the .deb on Debian's PostgreSQL 15, with no other copy of pg_apikey there: dpkg -i,
#      the schedule (and the preloaded usage file), dpkg -r removes every file;
#   2. the PostgreSQL 18 tarball, unpacked in a directory of its own and named by
#      extension_control_path and dynamic_library_path, the server's own copy of
#      pg_apikey moved away meanwhile: the schedule, and usage with the library preloaded
#      from there.
# The server's own files (the development build the other layers installed) are put back
# afterwards, also when a check fails. Ports 28950-28953; work in /tmp/pg_apikey_packages.
#
#   tests/packages/run.sh            build the packages (every major) and test them
#   PGAPIKEY_PACKAGES_BUILT=1 tests/packages/run.sh     test what target/packages holds
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
WORK=/tmp/pg_apikey_packages
PKG="$ROOT/target/packages"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
SAVED="$WORK/saved"

ok() { echo "package check ok: $*"; }
fail() { echo "package check FAILED: $*"; exit 1; }

if [ "${PGAPIKEY_PACKAGES_BUILT:-0}" != 1 ]; then
    "$ROOT/scripts/package.sh"
fi
for f in "postgresql-15-pg-apikey_${VERSION}-1_$(dpkg --print-architecture).deb" \
         "pg_apikey-$VERSION-pg15-linux-$(uname -m).tar.gz" "pg_apikey-$VERSION-pg16-linux-$(uname -m).tar.gz" \
         "pg_apikey-$VERSION-pg18-linux-$(uname -m).tar.gz" SHA256SUMS; do
    [ -s "$PKG/$f" ] || fail "scripts/package.sh made no $f"
done
(cd "$PKG" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not match the packages"
ok "scripts/package.sh made the .deb for 15, tarballs for 15, 16 and 18, and SHA256SUMS that match"

# ---------------------------------------------------------------- the server's own files
# move_away MAJOR: the server's pg_apikey files into $SAVED/MAJOR; put_back restores them.
MOVED=()
move_away() {
    local major="$1" lib ext
    use_major "$major"
    lib="$("$PG_CONFIG" --pkglibdir)"
    ext="$("$PG_CONFIG" --sharedir)/extension"
    mkdir -p "$SAVED/$major/lib" "$SAVED/$major/ext"
    as_root find "$lib" -maxdepth 1 -name 'pg_apikey*' -exec mv -t "$SAVED/$major/lib" {} +
    as_root find "$ext" -maxdepth 1 -name 'pg_apikey*' -exec mv -t "$SAVED/$major/ext" {} +
    MOVED+=("$major:$lib:$ext")
}
put_back() {
    local entry major lib ext
    for entry in "${MOVED[@]}"; do
        IFS=: read -r major lib ext <<<"$entry"
        as_root find "$SAVED/$major/lib" -maxdepth 1 -name 'pg_apikey*' -exec mv -t "$lib" {} +
        as_root find "$SAVED/$major/ext" -maxdepth 1 -name 'pg_apikey*' -exec mv -t "$ext" {} +
    done
    MOVED=()
}
cleanup() {
    local d
    for d in "$WORK"/pg*; do [ -f "$d/data/PG_VERSION" ] && stop_cluster "$d"; done
    dpkg-query -W -f='${Status}' postgresql-15-pg-apikey 2>/dev/null | grep -q "install ok installed" &&
        as_root dpkg -r postgresql-15-pg-apikey >/dev/null
    put_back
}
trap cleanup EXIT
rm -rf "$WORK"
mkdir -p "$WORK"

# regress_on DIR PORT [EXTRA_CONF]: the pg_regress schedule on a fresh cluster, then setup
# + usage on a fresh cluster that preloads pg_apikey (both with EXTRA_CONF).
regress_on() {
    local dir="$1" port="$2" conf="${3:-}" regress out
    regress="$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress"
    init_cluster "$dir"
    printf '%s\n' "$conf" >>"$dir/data/postgresql.conf"
    start_cluster "$dir" "$port"
    out="$dir/regress"
    mkdir -p "$out"
    (cd "$ROOT" && "$regress" --bindir="$PG_BIN" --host="$dir/sock" --port="$port" --user=postgres \
        --inputdir="$ROOT/tests/pg_regress" --outputdir="$out" --dbname=pg_apikey_regress \
        --schedule="$ROOT/tests/pg_regress/schedule") || { cat "$out/regression.diffs" >&2; fail "pg_regress on $dir"; }
    stop_cluster "$dir"
    init_cluster "$dir-preloaded"
    printf '%s\n%s\n' "$conf" "shared_preload_libraries = 'pg_apikey'" >>"$dir-preloaded/data/postgresql.conf"
    echo "apikey.usage_flush_interval = 3600" >>"$dir-preloaded/data/postgresql.conf"
    start_cluster "$dir-preloaded" "$((port + 1))"
    out="$dir-preloaded/regress"
    mkdir -p "$out"
    (cd "$ROOT" && "$regress" --bindir="$PG_BIN" --host="$dir-preloaded/sock" --port="$((port + 1))" --user=postgres \
        --inputdir="$ROOT/tests/pg_regress" --outputdir="$out" --dbname=pg_apikey_regress setup usage) ||
        { cat "$out/regression.diffs" >&2; fail "pg_regress usage on $dir-preloaded"; }
    stop_cluster "$dir-preloaded"
}

# ---------------------------------------------------------------- 1. the .deb on 15
log "the .deb on Debian's PostgreSQL 15"
move_away 15
lib15="$("$PG_CONFIG" --pkglibdir)"
ext15="$("$PG_CONFIG" --sharedir)/extension"
[ -z "$(find "$lib15" "$ext15" -maxdepth 1 -name 'pg_apikey*')" ] || fail "a copy of pg_apikey is left in PostgreSQL 15"
ok "PostgreSQL 15 has no copy of pg_apikey before the .deb"
as_root dpkg -i "$PKG/postgresql-15-pg-apikey_${VERSION}-1_$(dpkg --print-architecture).deb" >/dev/null
files="$(dpkg -L postgresql-15-pg-apikey)"
for f in "$lib15/pg_apikey.so" "$ext15/pg_apikey.control" "$ext15/pg_apikey--$VERSION.sql" \
         "$ext15/pg_apikey--0.1.0--0.2.0.sql" "$ext15/pg_apikey--0.2.0--0.3.0.sql"; do
    [ -f "$f" ] && grep -qx -- "$f" <<<"$files" || fail "dpkg -i: $f is not installed by the package"
done
readelf -S "$lib15/pg_apikey.so" | grep -q '\.symtab' && fail "the packaged library is not stripped"
ok "dpkg -i installs the stripped library, the control file, the install script and every update script"
regress_on "$WORK/pg15" 28950
ok "pg_regress (the schedule, and usage with the library preloaded) against the .deb's files"
as_root dpkg -r postgresql-15-pg-apikey >/dev/null
[ -z "$(find "$lib15" "$ext15" -maxdepth 1 -name 'pg_apikey*')" ] || fail "dpkg -r left pg_apikey files behind"
ok "dpkg -r removes every file"
put_back

# ---------------------------------------------------------------- 2. the 18 tarball
log "the PostgreSQL 18 tarball through extension_control_path"
move_away 18
home="$WORK/ext18"
mkdir -p "$home"
tar -C "$home" -xzf "$PKG/pg_apikey-$VERSION-pg18-linux-$(uname -m).tar.gz"
top="$home/pg_apikey-$VERSION-pg18-linux-$(uname -m)"
chmod -R a+rX "$WORK"
[ -z "$(find "$("$PG_CONFIG" --pkglibdir)" "$("$PG_CONFIG" --sharedir)/extension" -maxdepth 1 -name 'pg_apikey*')" ] ||
    fail "a copy of pg_apikey is left in PostgreSQL 18"
regress_on "$WORK/pg18" 28952 "extension_control_path = '$top/share:\$system'
dynamic_library_path = '$top/lib:\$libdir'"
ok "pg_regress (the schedule, and usage preloaded) on PostgreSQL 18 with the tarball named by extension_control_path and dynamic_library_path, nothing copied into the server's directories"
put_back
echo "packages: checks done"
