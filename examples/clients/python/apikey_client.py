"""pg_apikey from Python with psycopg 3 (and the standard library's http.server).

The story every example in examples/clients tells:
  1. a service role (a LOGIN role that is a member of apikey_service) provisions an
     organization and organization keys with no user;
  2. an API server verifies the key of every request: one prepared statement, the key a
     bound parameter, the route's required permissions a dict passed as jsonb (this
     example's server connects as an untrusted role, which only verifies);
  3. the verify row alone becomes an HTTP status (200/401/403/429) and rate-limit headers;
  4. errors are told apart by SQLSTATE (42501 not allowed, 22023 bad argument);
  5. a figure: verifies per second on one connection, beside SELECT 1.

Connection settings come from the libpq variables (PGHOST, PGPORT, PGDATABASE);
APIKEY_VIA=pgbouncer when PGPORT is a PgBouncer in transaction pool mode. Every
"client check ok" line is asserted against what the database returned.
"""

import datetime as dt
import json
import math
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

VIA = os.environ.get("APIKEY_VIA", "direct")
SERVICE_USER = os.environ.get("APIKEY_SERVICE_USER", "clients_service")
APP_USER = os.environ.get("APIKEY_APP_USER", "clients_app")
HTTP_PORT = int(os.environ.get("APIKEY_HTTP_PORT", "28982"))


def connect(user):
    # autocommit: every verify is its own short transaction. psycopg's default opens a
    # transaction on the first statement and keeps it open until commit(): a verify of a
    # key with a quota or rate limit would hold that key's row lock (and its spent use)
    # until then, and a rollback gives the use back.
    #
    # Prepared statements: directly, prepare_threshold=0 makes every statement a real
    # server-side prepared statement from its first execution (the default, 5, prepares a
    # statement on its fifth). Through PgBouncer 1.18 in transaction mode a named prepared
    # statement lives on one server connection that the next transaction may not get
    # (42P05 "already exists" / 26000 "does not exist"): prepare_threshold=None makes
    # psycopg send only unnamed statements, parameters still bound, never interpolated.
    # (PgBouncer 1.21+ with max_prepared_statements can keep prepared statements.)
    return psycopg.connect(
        user=user,
        autocommit=True,
        prepare_threshold=None if VIA == "pgbouncer" else 0,
        row_factory=dict_row,
    )


def check(condition, what):
    if not condition:
        print(f"client check FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"client check ok: {what}")


VERIFY = (
    "SELECT valid, code, key_id, org_id, user_id, permissions, metadata, remaining,"
    " expires_at, retry_after, rate_limits FROM apikey.verify_api_key(%s, %s)"
)


def verify(conn, key, required):
    # Jsonb(...) sends the dict as jsonb. A plain dict cannot be adapted ("cannot adapt
    # type 'dict'"), and Json(...) sends json, for which no verify_api_key(text, json)
    # exists: 42883.
    return conn.execute(VERIFY, (key, Jsonb(required) if required is not None else None)).fetchone()


def seconds_up(interval):
    """Whole seconds, rounded up, of an interval (psycopg: datetime.timedelta)."""
    return math.ceil(interval.total_seconds())


def to_http(row):
    """(status, headers) for a verify row, from the row alone (docs/application-developers.md,
    "Status codes and headers"): the rate-limit headers from the entry of `rate_limits`
    (a list of dicts: jsonb) with the least remaining; X-RateLimit-Reset in seconds."""
    code = row["code"]
    status = {"VALID": 200, "INSUFFICIENT_PERMISSIONS": 403, "RATE_LIMITED": 429,
              "USAGE_EXCEEDED": 429}.get(code, 401)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    if row["rate_limits"]:
        tight = min(row["rate_limits"], key=lambda limit: limit["remaining"])
        reset = 0
        if tight["reset_at"] is not None:
            reset_at = dt.datetime.fromisoformat(tight["reset_at"])
            reset = max(0, math.ceil((reset_at - dt.datetime.now(dt.timezone.utc)).total_seconds()))
        headers["X-RateLimit-Limit"] = str(tight["limit"])
        headers["X-RateLimit-Remaining"] = str(tight["remaining"])
        headers["X-RateLimit-Reset"] = str(reset)
    if row["remaining"] is not None:  # an int: bigint maps to Python int
        headers["X-Quota-Remaining"] = str(row["remaining"])
    if row["retry_after"] is not None:  # a datetime.timedelta
        headers["Retry-After"] = str(seconds_up(row["retry_after"]))
    return status, headers


# The API's routes and the permissions each requires, as plain dicts.
ROUTES = {"/things": {"mesa": ["read"]}, "/admin": {"mesa": ["admin"]}}


class Api(BaseHTTPRequestHandler):
    conn = None  # the API server's connection (the untrusted role), set before serving

    def do_GET(self):
        required = ROUTES.get(self.path)
        if required is None:
            self.send_error(404)
            return
        auth = self.headers.get("Authorization", "")
        key = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        row = verify(self.conn, key, required)  # a NULL key answers KEY_NOT_FOUND
        status, headers = to_http(row)
        body = json.dumps({"code": row["code"], "org_id": row["org_id"]}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def get(path, key=None):
    """One request to the API server: (status, headers, body)."""
    req = urllib.request.Request(f"http://127.0.0.1:{HTTP_PORT}{path}")
    if key is not None:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read())


def measure(conn, runs, seconds=4.0, chunk=200, max_each=20000):
    """Statements per second for each (sql, params, ok) of runs on one connection.
    Interleaved chunks, so that each sees the same machine (a shared one is noisy);
    bounded in time and count."""
    spent, done, start = [0.0] * len(runs), [0] * len(runs), time.perf_counter()
    while time.perf_counter() - start < seconds and min(done) < max_each:
        for i, (sql, params, ok) in enumerate(runs):
            t = time.perf_counter()
            for _ in range(chunk):
                if not ok(conn.execute(sql, params).fetchone()):
                    check(False, f"every measured call answers as expected ({sql})")
            spent[i] += time.perf_counter() - t
            done[i] += chunk
    return [n / t for n, t in zip(done, spent)]


def main():
    suffix = secrets.token_hex(3)
    org_id = f"acme-python-{VIA}-{suffix}"
    admin = connect(SERVICE_USER)
    # The API server verifies as an untrusted role (no key of its own, no membership): it
    # needs nothing else, since every header comes from verify's row.
    api = connect(APP_USER)

    # 1. Provisioning, as the service role.
    who = admin.execute("SELECT current_user AS role, pg_has_role('apikey_service', 'MEMBER') AS trusted").fetchone()
    check(who["role"] == SERVICE_USER and who["trusted"] is True,
          f"{SERVICE_USER} is a trusted caller (member of apikey_service)")

    org = admin.execute("SELECT id, created_at FROM apikey.create_organization(%s, %s)",
                        (org_id, "Acme (Python)")).fetchone()
    age = dt.datetime.now(dt.timezone.utc) - org["created_at"]
    check(org["id"] == org_id and org["created_at"].tzinfo is not None and abs(age) < dt.timedelta(minutes=5),
          f"organization {org_id} created; created_at is an aware datetime")

    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).replace(microsecond=123456)
    permissions = {"mesa": ["read", "write"]}
    metadata = {"plan": "pro", "seats": 5}
    created = admin.execute(
        """SELECT key_id, key, start, org_id, user_id, expires_at, permissions, metadata
             FROM apikey.create_api_key(org_id => %s, name => %s, prefix => %s, expires_at => %s,
                                        permissions => %s, metadata => %s)""",
        (org_id, "reader", "py_test_", expires, Jsonb(permissions), Jsonb(metadata))).fetchone()
    plain_key = created["key"]
    check(isinstance(created["key_id"], uuid.UUID) and created["org_id"] == org_id
          and created["user_id"] is None and plain_key.startswith("py_test_")
          and created["expires_at"] == expires and created["permissions"] == permissions
          and created["metadata"] == metadata,
          f"org key with no user: key_id {created['key_id']} (uuid.UUID), start {created['start']}, "
          "expires_at round-trips to the microsecond, permissions/metadata come back as dicts")

    # Policy fields are typed in SQL: a Python int is sent as the smallest integer type
    # that holds it, and one >= 2**31 (int8) finds no create_api_key(... integer ...): 42883.
    # Two limits: 5 a minute (the rate_limit_max/_window pair, named "default") and 2 an
    # hour (named "hour"). verify's rate_limits lists the pair first; the headers must
    # come from the tightest (the hour), not the first.
    limited = admin.execute(
        """SELECT key, rate_limit_max, rate_limit_window FROM apikey.create_api_key(
               org_id => %s, name => 'limited', permissions => %s,
               rate_limit_max => %s::integer, rate_limit_window => %s, rate_limits => %s)""",
        (org_id, Jsonb({"mesa": ["read"]}), 5, dt.timedelta(minutes=1),
         Jsonb([{"name": "hour", "limit": 2, "window": "1 hour"}]))).fetchone()
    check(limited["rate_limit_max"] == 5 and limited["rate_limit_window"] == dt.timedelta(minutes=1),
          "rate-limited key: 5 a minute (the window passed and read back as a timedelta) and 2 an hour")
    quota = admin.execute(
        """SELECT key, remaining FROM apikey.create_api_key(
               org_id => %s, name => 'metered', permissions => %s,
               remaining => %s, refill_amount => %s, refill_interval => %s)""",
        (org_id, Jsonb({"mesa": ["read"]}), 3, 3, dt.timedelta(days=1))).fetchone()
    check(quota["remaining"] == 3, "metered key: 3 uses, refilled daily")

    # 2./3. The API server: verify on every request, status and headers from the row.
    Api.conn = api
    server = HTTPServer(("127.0.0.1", HTTP_PORT), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, headers, body = get("/things", plain_key)
        check(status == 200 and body == {"code": "VALID", "org_id": org_id} and "X-RateLimit-Limit" not in headers,
              f"GET /things with the key: 200, org {org_id}, no rate-limit headers")
        status, headers, body = get("/admin", plain_key)
        check(status == 403 and body["code"] == "INSUFFICIENT_PERMISSIONS",
              "GET /admin (needs mesa:admin): 403 INSUFFICIENT_PERMISSIONS")
        status, headers, body = get("/things")
        check(status == 401 and body["code"] == "KEY_NOT_FOUND" and headers["WWW-Authenticate"].startswith("Bearer"),
              "no key: 401 KEY_NOT_FOUND with WWW-Authenticate")
        status, _, body = get("/things", plain_key[:-1] + ("A" if plain_key[-1] != "A" else "B"))
        check(status == 401 and body["code"] == "KEY_NOT_FOUND", "a mistyped key: 401 KEY_NOT_FOUND")

        for i in (1, 2):
            status, headers, body = get("/things", limited["key"])
            reset = int(headers["X-RateLimit-Reset"])
            check(status == 200 and headers["X-RateLimit-Limit"] == "2"
                  and headers["X-RateLimit-Remaining"] == str(2 - i) and 3500 < reset <= 3600,
                  f"rate-limited key, request {i}: 200, X-RateLimit-Limit 2, Remaining {2 - i}, Reset {reset} s "
                  "(all from verify's row)")
        status, headers, body = get("/things", limited["key"])
        reset = int(headers["X-RateLimit-Reset"])
        check(status == 429 and body["code"] == "RATE_LIMITED" and headers["X-RateLimit-Remaining"] == "0"
              and 3500 < reset <= 3600 and abs(int(headers["Retry-After"]) - reset) <= 1,
              f"rate-limited key, request 3: 429 RATE_LIMITED, X-RateLimit-Remaining 0, Reset/Retry-After {reset} s")

        # A verify inside a transaction that rolls back spends nothing: the use comes back.
        with api.transaction(force_rollback=True):
            row = verify(api, quota["key"], {"mesa": ["read"]})
            check(row["code"] == "VALID" and row["remaining"] == 2 and type(row["remaining"]) is int,
                  "metered key verified in a transaction: remaining 2 (an int)")
        for left in (2, 1, 0):
            status, headers, _ = get("/things", quota["key"])
            check(status == 200 and headers["X-Quota-Remaining"] == str(left),
                  f"metered key: 200, X-Quota-Remaining {left}" + (" (the rolled-back use was given back)" if left == 2 else ""))
        status, headers, body = get("/things", quota["key"])
        check(status == 429 and body["code"] == "USAGE_EXCEEDED" and 86000 < int(headers["Retry-After"]) <= 86400,
              f"metered key exhausted: 429 USAGE_EXCEEDED, Retry-After {headers['Retry-After']} s (next refill)")
    finally:
        server.shutdown()
        server.server_close()
    row = verify(api, quota["key"], {"mesa": ["read"]})
    check(row["code"] == "USAGE_EXCEEDED" and isinstance(row["retry_after"], dt.timedelta)
          and dt.timedelta(hours=23) < row["retry_after"] <= dt.timedelta(days=1),
          f"retry_after read as a timedelta: {row['retry_after']}")

    # 4. Errors by SQLSTATE.
    with connect(APP_USER) as app:
        try:
            app.execute("SELECT key FROM apikey.create_api_key(org_id => %s, name => 'sneaky')", (org_id,))
            check(False, "an ordinary role cannot create an org key")
        except psycopg.Error as err:  # psycopg.errors.InsufficientPrivilege
            check(err.sqlstate == "42501",
                  f"{APP_USER} (not a member) creating an org key: 42501 ({err.diag.message_primary})")
    try:
        verify(api, plain_key, ["mesa", "read"])  # a list, not {"resource": [actions]}
        check(False, "malformed required_permissions raises")
    except psycopg.Error as err:  # psycopg.errors.InvalidParameterValue
        check(err.sqlstate == "22023", f"malformed required_permissions: 22023 ({err.diag.message_primary})")

    # Prepared or not, as chosen in connect().
    named = api.execute("SELECT count(*) AS n FROM pg_prepared_statements WHERE strpos(statement, %s) > 0",
                        ("apikey.verify_api_key(",)).fetchone()["n"]
    if VIA == "pgbouncer":
        check(named == 0, "through PgBouncer: verify ran as unnamed statements (none in pg_prepared_statements)")
        # What the default settings do here: two clients of one pool each prepare "_pg3_0"
        # on the same server connection.
        first, second = (psycopg.connect(user=APP_USER, autocommit=True, prepare_threshold=0) for _ in range(2))
        try:
            first.execute("SELECT 1 AS one")
            try:
                second.execute("SELECT 2 AS two")
                check(False, "named prepared statements through PgBouncer 1.18 fail")
            except psycopg.Error as err:
                check(err.sqlstate in ("42P05", "26000"),
                      f"named prepared statements through PgBouncer transaction mode fail: {err.sqlstate} "
                      f"({err.diag.message_primary}), hence prepare_threshold=None")
            first.execute("DEALLOCATE ALL", prepare=False)
        finally:
            first.close()
            second.close()
    else:
        check(named == 1, "directly: verify is a server-side prepared statement on this connection")

    # 5. The figure: verifies per second on one connection, beside SELECT 1.
    required = Jsonb({"mesa": ["read"]})
    vps, sps = measure(api, [(VERIFY, (plain_key, required), lambda r: r["valid"] is True),
                             ("SELECT 1 AS one", None, lambda r: r["one"] == 1)])
    mode = "unnamed statements via PgBouncer" if VIA == "pgbouncer" else "prepared"
    print(f"client figure: python psycopg {psycopg.__version__} ({mode}): "
          f"{vps:.0f} verifies/s, SELECT 1 {sps:.0f}/s")
    admin.close()
    api.close()


if __name__ == "__main__":
    main()
