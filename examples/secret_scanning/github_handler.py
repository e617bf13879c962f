"""A GitHub secret scanning partner endpoint for pg_apikey (docs/sql-reference.md,
"When a key leaks").

GitHub finds keys with your prefix in public code and POSTs them here:

    POST /  (Content-Type: application/json)
    Github-Public-Key-Identifier: <id of the key GitHub signed with>
    Github-Public-Key-Signature: <base64 ECDSA P-256 / SHA-256 signature of the raw body>

    [{"token": "acme_live_...", "type": "acme_api_key",
      "url": "https://github.com/octo/app/blob/1a2b/config.py", "source": "content"}]

This handler checks the signature over the raw body against GitHub's public keys (it is
given them: fetch https://api.github.com/meta/public_keys/secret_scanning, which answers
{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}, and refresh them now and
then), then calls apikey.report_exposed_keys, which revokes the keys that are this
database's and records and announces each, and answers with GitHub's feedback JSON:
[{"token_hash": "<hex sha256>", "token_type": "...", "label": "true_positive"}]. A request
whose signature does not verify is answered 401 and touches nothing.

    APIKEY_DSN='host=... dbname=... user=app_scanner' \\
    GITHUB_PUBLIC_KEYS=keys.json APIKEY_LEAK_ACTION=revoke PORT=8080 python github_handler.py

The database role must be a trusted caller (a member of apikey_service); a NOINHERIT
login that is a member, granted EXECUTE on apikey.report_exposed_keys alone, is enough.
"""
import base64
import binascii
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MAX_BODY = 1 << 20  # GitHub sends a few tokens at a time


def load_public_keys(document):
    """{key_identifier: public key} from GitHub's public-keys document (parsed JSON)."""
    keys = {}
    for entry in document.get("public_keys", []):
        key = serialization.load_pem_public_key(entry["key"].encode())
        if isinstance(key, ec.EllipticCurvePublicKey):
            keys[entry["key_identifier"]] = key
    return keys


def signature_ok(public_keys, key_id, signature_b64, body):
    """Whether `body` (the raw bytes, as received) carries a valid signature by the key
    GitHub names. Unknown key, undecodable or wrong signature: False."""
    key = public_keys.get(key_id or "")
    if key is None or not signature_b64:
        return False
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), body, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, binascii.Error, ValueError):
        return False


def report(conn, body, action):
    """apikey.report_exposed_keys on the posted JSON, as GitHub's feedback list."""
    rows = conn.execute(
        "SELECT token_hash, token_type, label FROM apikey.report_exposed_keys(%s::jsonb, %s)",
        (body.decode("utf-8"), action),
    ).fetchall()
    return [{"token_hash": h, "token_type": t, "label": label} for h, t, label in rows]


def make_handler(conn, public_keys, action):
    class Handler(BaseHTTPRequestHandler):
        def reply(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                self.reply(400, {"error": "a JSON body of at most 1 MiB"})
                return
            body = self.rfile.read(length)  # the raw bytes: the signature covers them
            if not signature_ok(public_keys, self.headers.get("Github-Public-Key-Identifier"),
                                self.headers.get("Github-Public-Key-Signature"), body):
                self.reply(401, {"error": "bad signature"})
                return
            try:
                self.reply(200, report(conn, body, action))
            except psycopg.errors.InvalidParameterValue as err:  # 22023: not a report list
                self.reply(400, {"error": err.diag.message_primary})

        def log_message(self, *args):
            pass

    return Handler


def serve(dsn, public_keys, port, action="revoke"):
    """An HTTP server on 127.0.0.1:port (autocommit: each report commits at once, and
    its events reach listeners then)."""
    conn = psycopg.connect(dsn, autocommit=True)
    return HTTPServer(("127.0.0.1", port), make_handler(conn, public_keys, action)), conn


if __name__ == "__main__":
    with open(os.environ["GITHUB_PUBLIC_KEYS"]) as f:
        keys = load_public_keys(json.load(f))
    server, _ = serve(os.environ.get("APIKEY_DSN", ""), keys, int(os.environ.get("PORT", "8080")),
                      os.environ.get("APIKEY_LEAK_ACTION", "revoke"))
    server.serve_forever()
