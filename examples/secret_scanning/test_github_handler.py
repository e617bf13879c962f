"""The secret-scanning handler's test (run by tests/clients/run.sh): a key pair made here
stands in for GitHub's (no network). A signed report of one live key and one stranger's
token revokes the key and answers the feedback; a wrong signature, an unknown key id and
a body changed after signing are refused with 401 and revoke nothing.

    APIKEY_DSN=... APIKEY_SERVICE_USER=... python test_github_handler.py PORT
"""
import base64
import hashlib
import json
import os
import secrets
import sys
import threading
import urllib.error
import urllib.request

import psycopg
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import github_handler


def check(condition, what):
    if not condition:
        print(f"client check FAILED: secret scanning: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"client check ok: secret scanning: {what}")


def post(port, body, key_id, signature):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Github-Public-Key-Identifier": key_id,
                                          "Github-Public-Key-Signature": signature})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def main():
    port = int(sys.argv[1])
    dsn = os.environ["APIKEY_DSN"]
    # GitHub's side: a P-256 key pair and the public-keys document it publishes.
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key_id = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a"
    document = {"public_keys": [{"key_identifier": key_id, "key": pem, "is_current": True}]}
    public_keys = github_handler.load_public_keys(document)

    with psycopg.connect(dsn, autocommit=True) as admin:
        org = f"leaky-{secrets.token_hex(3)}"
        admin.execute("SELECT apikey.create_organization(%s)", (org,))
        key_id_db, key = admin.execute(
            "SELECT key_id, key FROM apikey.create_api_key(org_id => %s, name => 'pushed to github', "
            "prefix => 'leaky_live_')", (org,)).fetchone()
        server, conn = github_handler.serve(dsn, public_keys, port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            payload = [{"token": key, "type": "leaky_api_key",
                        "url": "https://github.com/octo/app/blob/1a2b/config.py", "source": "content"},
                       {"token": "ghp_someoneelsestoken0000000000000000000", "type": "leaky_api_key",
                        "url": "https://github.com/octo/app/blob/1a2b/.env", "source": "content"}]
            body = json.dumps(payload).encode()
            good = base64.b64encode(private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
            other = ec.generate_private_key(ec.SECP256R1())
            forged = base64.b64encode(other.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

            for what, (b, kid, sig) in {
                "a signature by another key": (body, key_id, forged),
                "an unknown key identifier": (body, "0" * 64, good),
                "a body changed after signing": (body.replace(b"content", b"CONTENT"), key_id, good),
                "no signature": (body, key_id, ""),
                "a signature that is not base64": (body, key_id, "not*base64"),
            }.items():
                status, answer = post(port, b, kid, sig)
                still = admin.execute("SELECT code FROM apikey.verify_api_key(%s)", (key,)).fetchone()[0]
                check(status == 401 and still == "VALID", f"{what}: 401, nothing revoked ({answer})")

            status, answer = post(port, body, key_id, good)
            expected = [{"token_hash": hashlib.sha256(key.encode()).hexdigest(), "token_type": "leaky_api_key",
                         "label": "true_positive"},
                        {"token_hash": hashlib.sha256(payload[1]["token"].encode()).hexdigest(),
                         "token_type": "leaky_api_key", "label": "false_positive"}]
            check(status == 200 and answer == expected,
                  "a signed report: 200 and GitHub's feedback (token_hash, token_type, label)")
            code = admin.execute("SELECT code FROM apikey.verify_api_key(%s)", (key,)).fetchone()[0]
            audit = admin.execute(
                "SELECT action, details->>'url' FROM apikey.list_audit_events(%s) WHERE key_id = %s "
                "AND action IN ('key_exposed', 'key_revoked') ORDER BY id", (org, key_id_db)).fetchall()
            check(code == "KEY_NOT_FOUND" and audit == [("key_exposed", payload[0]["url"]), ("key_revoked", None)],
                  "the leaked key is revoked, audited as key_exposed with its url, then key_revoked")
            status, answer = post(port, b"{\"token\": 1}", key_id,
                                  base64.b64encode(private.sign(b"{\"token\": 1}", ec.ECDSA(hashes.SHA256()))).decode())
            check(status == 400, f"a signed body that is not a report list: 400 ({answer})")
        finally:
            server.shutdown()
            server.server_close()
            conn.close()


if __name__ == "__main__":
    main()
