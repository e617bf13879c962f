import math, os, sys
from datetime import datetime, timezone
import psycopg

STATUS = {"VALID": 200, "KEY_NOT_FOUND": 401, "KEY_DISABLED": 401, "KEY_EXPIRED": 401,
          "INSUFFICIENT_PERMISSIONS": 403, "RATE_LIMITED": 429, "USAGE_EXCEEDED": 429}

def authenticate(conn, key, required=None):
    """(status, headers) for a request carrying `key`, from verify's row alone."""
    code, remaining, retry_after, limits = conn.execute(
        "SELECT code, remaining, retry_after, rate_limits"
        " FROM apikey.verify_api_key(%s, %s::jsonb)", (key, required)).fetchone()
    headers = {}
    if code in ("KEY_NOT_FOUND", "KEY_DISABLED", "KEY_EXPIRED"):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    if limits:  # the tightest limit names the X-RateLimit-* headers
        tight = min(limits, key=lambda l: l["remaining"])
        reset = datetime.fromisoformat(tight["reset_at"]) if tight["reset_at"] else None
        headers["X-RateLimit-Limit"] = str(tight["limit"])
        headers["X-RateLimit-Remaining"] = str(tight["remaining"])
        headers["X-RateLimit-Reset"] = str(max(0, math.ceil(
            (reset - datetime.now(timezone.utc)).total_seconds())) if reset else 0)
    if remaining is not None:
        headers["X-Quota-Remaining"] = str(remaining)
    if retry_after is not None:
        headers["Retry-After"] = str(math.ceil(retry_after.total_seconds()))
    return STATUS[code], headers

with psycopg.connect(os.environ.get("APIKEY_DSN", ""), autocommit=True) as conn:
    print(*authenticate(conn, sys.argv[1]))
