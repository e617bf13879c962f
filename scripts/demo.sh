#!/usr/bin/env bash
# The provisioning story, on a throwaway PostgreSQL with pg_apikey:
#   ./scripts/demo.sh         set everything up, start the cluster, run examples/walkthrough.sql
#   ./scripts/demo.sh stop    stop the cluster and remove its data directory
# PGAPIKEY_DEMO_MAJOR=18 (or 16) runs it on that PostgreSQL major instead of 15.
# The cluster has its own data directory and port; the system's own cluster is untouched.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEMO_DIR="${PGAPIKEY_DEMO_DIR:-/tmp/pg_apikey_demo}"
DEMO_PORT="${PGAPIKEY_DEMO_PORT:-28815}"

if [ "${1:-}" = stop ]; then
    use_major "${PGAPIKEY_DEMO_MAJOR:-15}"
    stop_cluster "$DEMO_DIR"
    rm -rf "$DEMO_DIR"
    echo "stopped and removed $DEMO_DIR"
    exit 0
fi

ensure_deps
use_major "${PGAPIKEY_DEMO_MAJOR:-15}"
install_extension
log "throwaway cluster in $DEMO_DIR on port $DEMO_PORT"
stop_cluster "$DEMO_DIR"
rm -rf "$DEMO_DIR"
start_cluster "$DEMO_DIR" "$DEMO_PORT"

log "walkthrough: examples/walkthrough.sql"
"$PG_BIN/psql" -X -q -h "$DEMO_DIR/sock" -p "$DEMO_PORT" -U postgres -d postgres -c "CREATE DATABASE apikey_demo"
"$PG_BIN/psql" -X -h "$DEMO_DIR/sock" -p "$DEMO_PORT" -U postgres -d apikey_demo \
    -v ON_ERROR_STOP=1 -f "$ROOT/examples/walkthrough.sql"

cat <<MSG

==> The cluster is still running. Open psql on it with:
      psql -h $DEMO_DIR/sock -p $DEMO_PORT -U postgres apikey_demo
    (or: psql -h 127.0.0.1 -p $DEMO_PORT -U postgres apikey_demo)
    Stop it and remove its data with: ./scripts/demo.sh stop
MSG
