#!/usr/bin/env bash
# Release packages of pg_apikey, for installing without a Rust toolchain.
#
#   scripts/package.sh [MAJOR…]      default: every supported major (15, 16, 18)
#
# Into target/packages/ (emptied first):
#   pg_apikey-<version>-pg<major>-linux-<arch>.tar.gz   for every major: lib/pg_apikey.so and
#       share/extension/ (the control file, every install and update script). Copy them
#       into `pg_config --pkglibdir` and `pg_config --sharedir`/extension, or, on 18, leave
#       them where they are and name them in extension_control_path and dynamic_library_path.
#   postgresql-15-pg-apikey_<version>-1_<debian arch>.deb   for Debian's PostgreSQL 15 (as
#       Debian names extension packages), depending on postgresql-15, installing the same
#       files where that server looks for them.
#   SHA256SUMS
# Each major is built in release mode (`cargo pgrx package`, the release profile: fat
# LTO) in its own target directory, and the library is stripped. The same script runs in
# the test command (scripts/test.sh packages) and in the release workflow
# (.github/workflows/release.yml). Needs what the test command installs (scripts/lib.sh:
# ensure_deps), and dpkg-deb.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAJORS=("$@")
[ "${#MAJORS[@]}" -gt 0 ] || MAJORS=("${ALL_MAJORS[@]}")
for m in "${MAJORS[@]}"; do
    case " ${ALL_MAJORS[*]} " in *" $m "*) ;; *) echo "unsupported major $m (have: ${ALL_MAJORS[*]})" >&2; exit 2 ;; esac
done

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
ARCH="$(uname -m)"
DEB_ARCH="$(dpkg --print-architecture)"
OUT="$ROOT/target/packages"
STAGE="$ROOT/target/package-stage"

ensure_deps
command -v dpkg-deb >/dev/null || { echo "dpkg-deb is required" >&2; exit 1; }
rm -rf "$OUT" "$STAGE"
mkdir -p "$OUT" "$STAGE"
started=$SECONDS

for major in "${MAJORS[@]}"; do
    use_major "$major"
    log "PostgreSQL $major: cargo pgrx package (release)"
    tree="$STAGE/pgrx-pg$major"
    (cd "$ROOT" && cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$tree")
    # cargo pgrx package lays the files out under the server's own absolute paths.
    libdir="$tree$("$PG_CONFIG" --pkglibdir)"
    extdir="$tree$("$PG_CONFIG" --sharedir)/extension"
    [ -f "$libdir/pg_apikey.so" ] && [ -f "$extdir/pg_apikey.control" ] ||
        { echo "cargo pgrx package left no pg_apikey.so / pg_apikey.control under $tree" >&2; exit 1; }
    strip --strip-unneeded "$libdir/pg_apikey.so"

    name="pg_apikey-$VERSION-pg$major-linux-$ARCH"
    dir="$STAGE/$name"
    mkdir -p "$dir/lib" "$dir/share/extension"
    cp "$libdir/pg_apikey.so" "$dir/lib/"
    cp "$extdir"/pg_apikey* "$dir/share/extension/"
    tar -C "$STAGE" --owner=0 --group=0 --numeric-owner -czf "$OUT/$name.tar.gz" "$name"

    if [ "$major" = 15 ]; then
        # Debian's PostgreSQL 15 (scripts/lib.sh uses it for 15): its paths are Debian's.
        pkg="postgresql-15-pg-apikey"
        deb="$STAGE/deb"
        mkdir -p "$deb/DEBIAN" "$deb/usr/lib/postgresql/15/lib" "$deb/usr/share/postgresql/15/extension" \
            "$deb/usr/share/doc/$pkg"
        cp "$libdir/pg_apikey.so" "$deb/usr/lib/postgresql/15/lib/"
        cp "$extdir"/pg_apikey* "$deb/usr/share/postgresql/15/extension/"
        cp "$ROOT/README.md" "$deb/usr/share/doc/$pkg/README.md"
        chmod 0644 "$deb/usr/lib/postgresql/15/lib/pg_apikey.so" "$deb/usr/share/postgresql/15/extension/"*
        size_kb="$(du -sk "$deb/usr" | cut -f1)"
        cat >"$deb/DEBIAN/control" <<EOF
Package: $pkg
Version: $VERSION-1
Architecture: $DEB_ARCH
Maintainer: pg_apikey maintainers <pg_apikey@localhost>
Depends: postgresql-15, libc6
Installed-Size: $size_kb
Section: database
Priority: optional
Description: API keys as a native part of PostgreSQL 15
 pg_apikey makes API keys a native part of the database: create, verify and
 manage keys with SQL (apikey.create_api_key, apikey.verify_api_key), with
 organization keys, quotas and rate limits, usage analytics and leaked-key
 reports. CREATE EXTENSION pg_apikey in each database that uses it.
EOF
        dpkg-deb --root-owner-group -Zxz --build "$deb" "$OUT/${pkg}_$VERSION-1_$DEB_ARCH.deb" >/dev/null
    fi
done

(cd "$OUT" && sha256sum -- *.tar.gz *.deb 2>/dev/null >SHA256SUMS)
rm -rf "$STAGE"
log "packages in $OUT ($((SECONDS - started)) s):"
(cd "$OUT" && for f in *; do printf '  %-52s %8s bytes\n' "$f" "$(stat -c %s "$f")"; done)
