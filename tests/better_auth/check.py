"""After examples/migrate_from_better_auth.sql: every key better-auth made answers in
pg_apikey as tests/better_auth/make_keys.mjs says it must, and a second run of the
migration changes nothing.

    check.py KEYS.json -- MIGRATION COMMAND...
    check.py --app-membership KEYS.json -- MIGRATION COMMAND...

KEYS.json is make_keys.mjs's output; the command after "--" runs the migration again
(as run.sh ran it the first time). With --app-membership, in a database where
apikey.org_exists_function and apikey.member_roles_function answer from better-auth's
own tables: the command runs the migration (twice), which must copy no organization or
member into pg_apikey's tables, and the keys must still answer with their owners. The database comes from the libpq variables (PGHOST,
PGPORT, PGDATABASE) and PGUSER, a superuser. Every check prints one line,
"better-auth check ok: ..." or "better-auth check FAILED: ...: ..."; the exit status
is non-zero when any failed.
"""
import hashlib
import json
import subprocess
import sys
from datetime import datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

FAILED = 0


def ok(what):
    print(f"better-auth check ok: {what}", flush=True)


def failed(what, details):
    global FAILED
    FAILED += 1
    print(f"better-auth check FAILED: {what}: {details}", flush=True)


def check(what, problems):
    """ok when `problems` (a list of strings) is empty, else FAILED listing them."""
    if problems:
        failed(what, "; ".join(problems))
    else:
        ok(what)


def ts(text):
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def ms(n):
    return None if n is None else timedelta(milliseconds=n)


def digest(key):
    return hashlib.sha256(key.encode()).digest()


def connect(**kw):
    return psycopg.connect("", autocommit=True, **kw)


def verify(db, key, required=None):
    """verify_api_key's row as a dict. Only the key and required_permissions arguments,
    and columns by name: the ones this test reads exist in every 0.2.0 build."""
    if required is None:
        cur = db.execute(
            "SELECT valid, code, key_id, org_id, user_id, name, permissions, metadata, remaining "
            "FROM apikey.verify_api_key(%s)",
            (key,),
        )
    else:
        cur = db.execute(
            "SELECT valid, code, key_id, org_id, user_id, name, permissions, metadata, remaining "
            "FROM apikey.verify_api_key(%s, required_permissions => %s)",
            (key, Jsonb(required)),
        )
    cols = [c.name for c in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    assert len(rows) == 1, f"verify returned {len(rows)} rows"
    return rows[0]


def key_info(db, key_id):
    row = db.execute("SELECT pg_catalog.to_jsonb(k) FROM apikey.get_api_key(%s) k", (key_id,)).fetchone()
    return row[0]


def key_id_of(db, key):
    """The id of the key with this text (the test reads the table: it runs as superuser)."""
    row = db.execute("SELECT id FROM apikey.keys WHERE digest = %s", (digest(key),)).fetchone()
    return row[0] if row else None


def sqlstate_of(db, sql, params):
    try:
        db.execute(sql, params)
    except psycopg.Error as e:
        return e.sqlstate, str(e).splitlines()[0]
    return None, "no error"


def snapshot(db):
    """Everything a second run could change: keys' public fields, organizations,
    members, and the number of audit events."""
    keys = db.execute(
        "SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(k) ORDER BY k.key_id) FROM apikey.list_api_keys() k"
    ).fetchone()[0]
    orgs = db.execute("SELECT pg_catalog.jsonb_agg(o ORDER BY o.id) FROM apikey.organizations o").fetchone()[0]
    members = db.execute(
        "SELECT pg_catalog.jsonb_agg(m ORDER BY m.org_id, m.user_id) FROM apikey.members m"
    ).fetchone()[0]
    events = db.execute("SELECT count(*) FROM apikey.list_audit_events()").fetchone()[0]
    return {"keys": keys, "organizations": orgs, "members": members, "audit events": events}


def run_migration(cmd):
    """Run the migration; its exit status, summary line and stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    summary = [l for l in proc.stdout.splitlines() if l.startswith("better-auth migration:")]
    return proc.returncode, (summary[0] if summary else None), proc.stderr.strip()


def app_membership(data, cmd):
    """The migration where the application's functions are the membership source."""
    keys = data["keys"]
    n_in = sum(1 for k in keys if k["pg_apikey"]["imported"])
    n_out = len(keys) - n_in
    db = connect()
    for run, (imported, present) in enumerate(((n_in, 0), (0, n_in)), 1):
        rc, summary, err = run_migration(cmd)
        expect = (
            f"better-auth migration: {imported} keys imported, {present} already present, {n_out} skipped; "
            "0 organizations created, 0 already present; 0 members added, 0 already present "
            "(membership: the application's functions)"
        )
        check(
            f"application's membership functions, run {run}: {imported} keys imported, no organization or member copied",
            ([] if rc == 0 else [f"exit status {rc}: {err[-500:]}"])
            + ([] if summary == expect else [f"summary {summary!r}, expected {expect!r}"]),
        )
    n = db.execute("SELECT (SELECT count(*) FROM apikey.organizations) + (SELECT count(*) FROM apikey.members)").fetchone()[0]
    check("application's membership functions: pg_apikey's own organization and member tables stay empty",
          [] if n == 0 else [f"{n} rows"])
    problems = []
    for k in keys:
        want, step = k["pg_apikey"], k["pg_apikey"]["steps"][0]
        r = verify(db, k["key"])
        if r["code"] != step["code"]:
            problems.append(f"{k['label']}: expected {step['code']}, got {r['code']}")
        if r["code"] == "VALID" and (r["org_id"], r["user_id"]) != (want["org_id"], want["user_id"]):
            problems.append(f"{k['label']}: owner {(r['org_id'], r['user_id'])}, expected {(want['org_id'], want['user_id'])}")
    org_keys = sum(1 for k in keys if k["pg_apikey"]["org_id"] and k["pg_apikey"]["imported"])
    check(
        f"application's membership functions: all {len(keys)} keys answer as expected "
        f"({org_keys} of organizations, with their owners; {n_out} of a deleted organization not imported)",
        problems,
    )
    return 1 if FAILED else 0


def main():
    args = sys.argv[1:]
    mode = "main"
    if args[:1] == ["--app-membership"]:
        mode, args = "app-membership", args[1:]
    if len(args) < 3 or args[1] != "--":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    data = json.load(open(args[0]))
    rerun = args[2:]
    if mode == "app-membership":
        return app_membership(data, rerun)
    keys = data["keys"]
    db = connect()

    # ---------------------------------------------------------------- organizations, members
    orgs = db.execute("SELECT id, name FROM apikey.organizations ORDER BY id").fetchall()
    want = sorted((o["id"], o["name"]) for o in data["organizations"])
    check(
        f"{len(want)} organizations copied with their names",
        [] if orgs == want else [f"expected {want}, got {orgs}"],
    )
    members = db.execute("SELECT org_id, user_id, role FROM apikey.members ORDER BY 1, 2").fetchall()
    want = sorted((m["org"], m["user"], m["expect"]) for m in data["members"])
    several = sorted({f"'{m['role']}' -> {m['expect']}" for m in data["members"] if "," in m["role"]})
    check(
        f"{len(want)} members copied, one role each ({', '.join(several)})",
        [] if members == want else [f"expected {want}, got {members}"],
    )

    # ---------------------------------------------------------------- what was imported
    ids = {}
    n_in = sum(1 for k in keys if k["pg_apikey"]["imported"])
    n_out = len(keys) - n_in
    imported_events = db.execute(
        "SELECT count(*) FROM apikey.list_audit_events() WHERE action = 'key_imported'"
    ).fetchone()[0]
    check(
        f"one key_imported audit event per imported key ({n_in})",
        [] if imported_events == n_in else [f"{imported_events} events"],
    )
    for k in keys:
        label, want = k["label"], k["pg_apikey"]
        kid = key_id_of(db, k["key"])
        if not want["imported"]:
            check(f"{label}: not imported ({want['differs']})", [] if kid is None else [f"imported as {kid}"])
            continue
        if kid is None:
            failed(f"{label}: imported", "no key with that digest")
            continue
        ids[label] = kid
        info = key_info(db, kid)
        problems = []

        def same(field, expected, actual):
            if expected != actual:
                problems.append(f"{field}: expected {expected!r}, got {actual!r}")

        same("imported", True, info.get("imported"))
        for f in ("org_id", "user_id", "name", "enabled", "permissions", "metadata", "remaining",
                  "refill_amount", "rate_limit_max"):
            same(f, want[f], info.get(f))
        same("prefix", want["prefix"] or "", info.get("prefix") or "")
        if want["start"] is not None:
            same("start", want["start"], info.get("start"))
        for f in ("expires_at", "created_at", "last_used_at"):
            same(f, ts(want[f]), ts(info.get(f)))
        # Intervals come back as text in to_jsonb; compare them in SQL.
        for f, n in (("refill_interval", want["refill_interval_ms"]), ("rate_limit_window", want["rate_limit_window_ms"])):
            got = db.execute(f"SELECT {f} FROM apikey.get_api_key(%s)", (kid,)).fetchone()[0]
            same(f, ms(n), got)
        check(f"{label}: imported with its owner, settings and times", problems)

    # ---------------------------------------------------------------- verify, as better-auth did
    for k in keys:
        label, want, ba = k["label"], k["pg_apikey"], k["better_auth"]["answer"]
        problems = []
        answers = []
        for i, step in enumerate(want["steps"]):
            r = verify(db, k["key"])
            answers.append(r["code"])
            if r["code"] != step["code"]:
                problems.append(f"verify {i + 1}: expected {step['code']}, got {r['code']}")
            if r["valid"] != (step["code"] == "VALID"):
                problems.append(f"verify {i + 1}: valid is {r['valid']} with code {r['code']}")
            if "remaining" in step and r["remaining"] != step["remaining"]:
                problems.append(f"verify {i + 1}: remaining expected {step['remaining']}, got {r['remaining']}")
            if i == 0 and r["code"] == "VALID":
                for f in ("org_id", "user_id", "name", "permissions", "metadata"):
                    if r[f] != want[f]:
                        problems.append(f"{f}: expected {want[f]!r}, got {r[f]!r}")
                if r["key_id"] != ids.get(label):
                    problems.append(f"key_id {r['key_id']} is not the imported key's {ids.get(label)}")
                # The application's view in better-auth, right before the migration.
                if ba["valid"]:
                    for f, w in (("permissions", ba["permissions"]), ("metadata", ba["metadata"])):
                        if r[f] != w:
                            problems.append(f"{f}: better-auth answered {w!r}, pg_apikey {r[f]!r}")
                    owner = r["org_id"] or r["user_id"]
                    if owner != ba["referenceId"]:
                        problems.append(f"owner: better-auth {ba['referenceId']}, pg_apikey {owner}")
                # The quota carries over exactly: one use fewer than better-auth had left.
                if k["better_auth"]["remaining"] is not None and r["remaining"] != k["better_auth"]["remaining"] - 1:
                    problems.append(
                        f"remaining after one use: expected {k['better_auth']['remaining'] - 1} "
                        f"(better-auth had {k['better_auth']['remaining']}), got {r['remaining']}"
                    )
        if want["differs"] is None and ba["code"] != want["steps"][0]["code"]:
            problems.append(f"better-auth answered {ba['code']}, pg_apikey {want['steps'][0]['code']}")
        what = f"{label}: better-auth {ba['code']}, pg_apikey " + " ".join(answers)
        if want["differs"]:
            what += f" ({want['differs']})"
        check(what, problems)
        for req in want["requires"]:
            r = verify(db, k["key"], req["permissions"])
            check(
                f"{label}: required_permissions {json.dumps(req['permissions'])} -> {req['code']}",
                [] if r["code"] == req["code"] else [f"got {r['code']}"],
            )

    # ---------------------------------------------------------------- wrong keys
    plain = next(k["key"] for k in keys if k["label"] == "plain")
    prefixed = next(k["key"] for k in keys if k["label"] == "prefixed")

    def one_changed(key, at):
        c = key[at]
        return key[:at] + ("b" if c == "a" else "a") + key[at + 1:]

    wrong = {
        "plain key, last character changed": one_changed(plain, -1),
        "plain key, first character changed": one_changed(plain, 0),
        "prefixed key, a middle character changed": one_changed(prefixed, len(prefixed) // 2),
        "plain key, one character short": plain[:-1],
        "plain key, one character more": plain + "a",
        "empty string": "",
        "garbage": "not-a-key",
        "pg_apikey-looking garbage": "ak_" + "x" * 40,
        "10000 characters": "a" * 10000,
    }
    for what, text in wrong.items():
        r = verify(db, text)
        check(
            f"{what}: KEY_NOT_FOUND",
            [] if (r["code"], r["valid"], r["key_id"]) == ("KEY_NOT_FOUND", False, None) else [f"got {r}"],
        )

    # ---------------------------------------------------------------- rotation
    old_id = ids.get("plain")
    row = db.execute("SELECT key_id, key FROM apikey.rotate_api_key(%s)", (old_id,)).fetchone()
    new_id, new_key = row
    prefix = db.execute("SELECT COALESCE(NULLIF(current_setting('apikey.default_prefix', true), ''), 'ak_')").fetchone()[0]
    problems = []
    if not new_key.startswith(prefix):
        problems.append(f"new key {new_key[:12]}... does not start with {prefix}")
    r = verify(db, new_key)
    if r["code"] != "VALID" or r["key_id"] != new_id:
        problems.append(f"new key verifies {r['code']} (key_id {r['key_id']})")
    info = key_info(db, new_id)
    if info.get("imported") is not False:
        problems.append(f"get_api_key(new).imported is {info.get('imported')!r}")
    if info.get("rotated_from") != str(old_id):
        problems.append(f"rotated_from is {info.get('rotated_from')}")
    old = verify(db, plain)
    if old["code"] != "KEY_EXPIRED":
        problems.append(f"the imported key after rotation (grace 0): {old['code']}")
    check(f"rotating an imported key gives a {prefix}... key that verifies VALID, imported false; the old text answers KEY_EXPIRED", problems)
    # A key with better-auth's own prefix: its successor has that prefix or pg_apikey's.
    k = next(k for k in keys if k["label"] == "prefixed")
    row = db.execute("SELECT key_id, key, prefix FROM apikey.rotate_api_key(%s, grace => '1 hour')", (ids["prefixed"],)).fetchone()
    problems = []
    if row[2] not in (k["pg_apikey"]["prefix"], prefix) or not row[1].startswith(row[2]):
        problems.append(f"new key {row[1][:12]}..., prefix {row[2]!r}")
    for what, text, want_id in (("new key", row[1], row[0]), ("old key, within its grace", k["key"], ids["prefixed"])):
        r = verify(db, text)
        if r["code"] != "VALID" or r["key_id"] != want_id:
            problems.append(f"{what}: {r['code']} (key_id {r['key_id']})")
    check(f"rotating the imported {k['pg_apikey']['prefix']}... key (grace 1 hour): the new key has prefix {row[2]} "
          "and verifies VALID, so does the old one", problems)

    # ---------------------------------------------------------------- who may import
    db.execute("DROP ROLE IF EXISTS better_auth_ordinary")
    db.execute("CREATE ROLE better_auth_ordinary LOGIN")
    some_user = next(k["pg_apikey"]["user_id"] for k in keys if k["pg_apikey"]["user_id"])
    with connect(user="better_auth_ordinary") as other:
        state, msg = sqlstate_of(
            other, "SELECT apikey.import_api_key(%s, user_id => %s)", (digest("ordinary role's key"), some_user)
        )
        # What an application's own role does: verify an imported key.
        k = next(k for k in keys if k["label"] == "expiring")
        r = verify(other, k["key"])
    check("an ordinary role calling import_api_key: 42501", [] if state == "42501" else [f"{state}: {msg}"])
    check("an ordinary role verifies an imported key: VALID, with its owner",
          [] if (r["code"], r["user_id"]) == ("VALID", k["pg_apikey"]["user_id"]) else [f"got {r}"])
    for n in (31, 33, 0):
        state, msg = sqlstate_of(db, "SELECT apikey.import_api_key(%s, user_id => %s)", (b"\x01" * n, some_user))
        check(f"a {n}-byte digest: 22023", [] if state == "22023" else [f"{state}: {msg}"])
    state, msg = sqlstate_of(db, "SELECT apikey.import_api_key(%s, org_id => 'no-such-org')", (digest("orphan"),))
    check("an organization that does not exist: P0002", [] if state == "P0002" else [f"{state}: {msg}"])
    # Importing a digest already there returns that key's id and changes nothing.
    k = next(k for k in keys if k["label"] == "permissions-metadata")
    before = key_info(db, ids[k["label"]])
    events_before = db.execute("SELECT count(*) FROM apikey.list_audit_events()").fetchone()[0]
    got = db.execute(
        "SELECT apikey.import_api_key(%s, user_id => 'someone-else', name => 'changed', remaining => 1)",
        (digest(k["key"]),),
    ).fetchone()[0]
    after = key_info(db, ids[k["label"]])
    events_after = db.execute("SELECT count(*) FROM apikey.list_audit_events()").fetchone()[0]
    check(
        "importing a digest already present (other owner, name, quota given) returns that key's id and changes nothing",
        ([] if got == ids[k["label"]] else [f"returned {got}, not {ids[k['label']]}"])
        + ([] if before == after else [f"before {before}, after {after}"])
        + ([] if events_before == events_after else [f"audit events {events_before} -> {events_after}"]),
    )

    # ---------------------------------------------------------------- a second run
    before = snapshot(db)
    rc, summary, err = run_migration(rerun)
    expect = (
        f"better-auth migration: 0 keys imported, {n_in} already present, {n_out} skipped; "
        f"0 organizations created, {len(data['organizations'])} already present; "
        f"0 members added, {len(data['members'])} already present"
    )
    problems = []
    if rc != 0:
        problems.append(f"exit status {rc}: {err[-500:]}")
    if summary != expect:
        problems.append(f"summary {summary!r}, expected {expect!r}")
    after = snapshot(db)
    for part in before:
        if before[part] != after[part]:
            problems.append(f"{part} changed")
    check(
        f"a second run changes nothing ({len(before['keys'])} keys, {len(before['organizations'])} organizations, "
        f"{len(before['members'])} members, {before['audit events']} audit events the same)",
        problems,
    )
    if summary:
        print(summary)
    r = verify(db, plain)
    check("after the second run, the rotated imported key still answers KEY_EXPIRED",
          [] if r["code"] == "KEY_EXPIRED" else [f"got {r['code']}"])

    db.execute("DROP ROLE IF EXISTS better_auth_ordinary")
    return 1 if FAILED else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a crash is a failure too, and says where
        import traceback

        traceback.print_exc()
        print(f"better-auth check FAILED: check.py stopped: {e!r}", flush=True)
        sys.exit(1)
