"""Fault-injection checks for pg_apikey. Run by tests/faults/run.sh, one group per process:

    faults.py GROUP      (crash-usage, crash-create, standby, fuzz-keys, fuzz-json,
                          maintenance, open-txn, setters, usage, usage-standby; see the
                          header of run.sh)

The environment comes from run.sh: FAULTS_MAJOR, FAULTS_WORK (a directory under
/tmp/pg_apikey_faults*), FAULTS_PORT (primary; FAULTS_PORT + 1 for a standby) and
FAULTS_CTL (run.sh itself, called back for init/start/stop/basebackup through
scripts/lib.sh). Every check prints "fault check ok: ..."; the first that does not hold
raises CheckFailed, printed as "fault check FAILED: ..." with exit status 1.
"""
import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import zlib

import psycopg
from psycopg import errors

MAJOR = os.environ["FAULTS_MAJOR"]
WORK = os.environ["FAULTS_WORK"]
PORT = int(os.environ["FAULTS_PORT"])
CTL = os.environ["FAULTS_CTL"]
DB = "faults"


class CheckFailed(Exception):
    pass


def ok(what):
    print(f"fault check ok: {what}", flush=True)


def figure(what):
    print(f"fault figure: {what}", flush=True)


def check(condition, what, detail=""):
    if not condition:
        raise CheckFailed(f"{what}" + (f" ({detail})" if detail else ""))
    ok(what)


def short(value, limit=160):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


# ---------------------------------------------------------------- clusters

class Cluster:
    """A scratch cluster in WORK/<name> (data/, sock/, server.log), made by lib.sh."""

    def __init__(self, name, port=PORT):
        self.dir = os.path.join(WORK, name)
        self.port = port

    def ctl(self, action, *args):
        subprocess.run(["bash", CTL, "--ctl", MAJOR, action, *map(str, args)], check=True)

    def init(self):
        self.ctl("init", self.dir)

    def start(self):
        self.ctl("start", self.dir, self.port)

    def stop(self):
        self.ctl("stop", self.dir)

    def conninfo(self, db=DB, user="postgres"):
        return (f"host={self.dir}/sock port={self.port} user={user} dbname={db} "
                "connect_timeout=10 options='-c statement_timeout=60s'")

    def connect(self, db=DB, user="postgres"):
        return psycopg.connect(self.conninfo(db, user), autocommit=True)

    def fresh(self, conf=""):
        """A new cluster (with `conf` added to its postgresql.conf) with database `faults`
        holding pg_apikey and organization 'o'."""
        self.init()
        if conf:
            with open(os.path.join(self.dir, "data", "postgresql.conf"), "a") as f:
                f.write(conf)
        self.start()
        with self.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {DB}")
        with self.connect() as conn:
            conn.execute("CREATE EXTENSION pg_apikey")
            conn.execute("SELECT apikey.create_organization('o')")
        return self

    def crash(self):
        """kill -9 the postmaster and all its children, all frozen first (SIGSTOP) so that
        none of them can notice the others dying and clean up. Only a postmaster that
        really serves this data directory, found through its postmaster.pid."""
        data = os.path.join(self.dir, "data")
        with open(os.path.join(data, "postmaster.pid")) as f:
            pm = int(f.readline())
        with open(f"/proc/{pm}/cmdline", "rb") as f:
            if data.encode() not in f.read():
                raise CheckFailed(f"pid {pm} in {data}/postmaster.pid is not that cluster's postmaster")
        os.kill(pm, signal.SIGSTOP)
        children = children_of(pm)
        for pid in children:
            os.kill(pid, signal.SIGSTOP)
        for pid in [pm, *children]:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while any(os.path.exists(f"/proc/{pid}") for pid in [pm, *children]):
            reap_children()
            if time.monotonic() > deadline:
                raise CheckFailed(f"processes of {data} still exist 15 s after kill -9")
            time.sleep(0.05)
        return len(children)


def become_subreaper():
    """Postmasters started from here (pg_ctl daemonizes them) are re-parented to this
    process rather than to PID 1, so that after a kill -9 this process reaps them: a
    zombie postmaster would keep its PID "alive" for pg_ctl and for the next postmaster's
    lock-file check, and this machine's PID 1 does not reap promptly."""
    PR_SET_CHILD_SUBREAPER = 36
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_children():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def children_of(ppid):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid:
                pids.append(int(entry))
    return pids


def wait_until(condition, what, seconds, step=0.05):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {seconds} s")
        time.sleep(step)


# ---------------------------------------------------------------- keys

def create_key(conn, **settings):
    """create_api_key(org_id => 'o', **settings) as the connection's role: (key_id, key)."""
    names = ", ".join(f"{name} => %({name})s" for name in settings)
    sql = "SELECT key_id, key FROM apikey.create_api_key(org_id => 'o'" + (", " + names if names else "") + ")"
    return conn.execute(sql, settings).fetchone()


def verify(conn, key, required=None):
    if required is None:
        return conn.execute("SELECT code FROM apikey.verify_api_key(%s)", (key,)).fetchone()[0]
    return conn.execute("SELECT code FROM apikey.verify_api_key(%s, %s::jsonb)", (key, required)).fetchone()[0]


def remaining_of(conn, key_id):
    return conn.execute("SELECT remaining FROM apikey.get_api_key(%s)", (key_id,)).fetchone()[0]


class Client(threading.Thread):
    """One connection running `step(conn)` until the deadline, `iterations` times at most,
    or until the server goes away. step returns a code; every "VALID" is an acknowledged
    use, with its time. Anything but the expected codes is an error."""

    def __init__(self, cluster, step, seconds, iterations, expect=("VALID",), user="postgres"):
        super().__init__(daemon=True)
        self.cluster, self.step, self.user = cluster, step, user
        self.seconds, self.iterations, self.expect = seconds, iterations, expect
        self.acks = []          # monotonic times of VALID answers
        self.codes = {}
        self.error = None       # an unexpected answer or error
        self.lost = None        # the connection failure that ended the loop
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self):
        try:
            conn = self.cluster.connect(user=self.user)
        except psycopg.Error as e:
            self.error = f"connect: {e}"
            self.ready.set()
            return
        deadline = time.monotonic() + self.seconds
        try:
            for _ in range(self.iterations):
                if time.monotonic() > deadline or self.stop.is_set():
                    break
                try:
                    code = self.step(conn)
                except psycopg.OperationalError as e:
                    if e.sqlstate is None or conn.broken:   # the server went away
                        self.lost = e
                        break
                    self.error = f"{e.sqlstate}: {e}"
                    break
                except psycopg.Error as e:
                    self.error = f"{e.sqlstate}: {e}"
                    break
                self.codes[code] = self.codes.get(code, 0) + 1
                if code == "VALID":
                    self.acks.append(time.monotonic())
                    self.ready.set()
                if code not in self.expect:
                    self.error = f"unexpected code {code}"
                    break
                if code == "USAGE_EXCEEDED" and "USAGE_EXCEEDED" in self.expect:
                    break
        finally:
            self.ready.set()
            try:
                conn.close()
            except psycopg.Error:
                pass


def run_clients(clients, seconds):
    for c in clients:
        c.start()
    for c in clients:
        c.join(seconds)
        if c.is_alive():
            raise CheckFailed(f"a client still runs after {seconds} s")
    errors_seen = [c.error for c in clients if c.error]
    return errors_seen


# ---------------------------------------------------------------- integrity

def amcheck(conn, what):
    """Every index of the apikey schema's tables passes bt_index_check and
    bt_index_parent_check with heapallindexed, and verify_heapam finds nothing."""
    if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'").fetchone() is None:
        raise CheckFailed(f"amcheck is not available for PostgreSQL {MAJOR} (install its contrib modules)")
    conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    indexes = conn.execute("""
        SELECT i.indexrelid::regclass::text, am.amname
          FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
          JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
         WHERE t.relnamespace = 'apikey'::regnamespace ORDER BY 1""").fetchall()
    not_btree = [name for name, am in indexes if am != "btree"]
    if not_btree:
        raise CheckFailed(f"amcheck cannot check non-B-tree indexes {not_btree}")
    for name, _ in indexes:
        try:
            conn.execute("SELECT bt_index_check(%s::regclass, true)", (name,))
            conn.execute("SELECT bt_index_parent_check(%s::regclass, true)", (name,))
        except psycopg.Error as e:
            raise CheckFailed(f"{what}: amcheck of index {name}: {e.sqlstate}: {e}")
    tables = [r[0] for r in conn.execute(
        "SELECT oid::regclass::text FROM pg_class WHERE relnamespace = 'apikey'::regnamespace AND relkind = 'r'")]
    for table in tables:
        bad = conn.execute("SELECT count(*) FROM verify_heapam(%s::regclass)", (table,)).fetchone()[0]
        if bad:
            raise CheckFailed(f"{what}: verify_heapam({table}) reports {bad} problems")
    check(len(indexes) >= 5, f"{what}: amcheck clean on all {len(indexes)} indexes and {len(tables)} tables of schema apikey")


# ---------------------------------------------------------------- 1. crash-usage

CLIENTS = 8
QUOTA = 100_000
# The hot key and the shared quota: enough for 2 s of 16 clients on a fast machine, little
# enough to drain in seconds after the crash.
HOT_CLIENTS = 16
HOT_QUOTA = 40_000


# What docs/operations.md says a crash may lose with apikey.usage_synchronous_commit = off:
# the uses acknowledged in about 3 × wal_writer_delay (200 ms by default) before it.
ASYNC_LOSS_WINDOW = 0.6


def crash_under_load(cluster, key, label, clients=CLIENTS):
    """`clients` connections verify `key` (or, for a list, client i verifies keys[i % len])
    for ~2 s; kill -9 mid-load; restart. Returns (acknowledged, acknowledged in the
    ASYNC_LOSS_WINDOW before the crash)."""
    keys = key if isinstance(key, list) else [key]
    clients = [Client(cluster, lambda conn, k=keys[i % len(keys)]: verify(conn, k), 30, 2_000_000)
               for i in range(clients)]
    for c in clients:
        c.start()
    for c in clients:
        if not c.ready.wait(20) or not c.acks:
            raise CheckFailed(f"{label}: a client got no VALID answer before the crash ({c.error})")
    time.sleep(2.0)
    crashed_at = time.monotonic()
    children = cluster.crash()
    for c in clients:
        c.join(20)
    errors_seen = [c.error for c in clients if c.error]
    if errors_seen:
        raise CheckFailed(f"{label}: a client got {errors_seen[0]} before the crash")
    check(all(c.lost for c in clients),
          f"{label}: kill -9 of the postmaster and its {children} children hit all {len(clients)} clients mid-load")
    cluster.start()
    acked = sum(len(c.acks) for c in clients)
    in_window = sum(1 for c in clients for t in c.acks if t >= crashed_at - ASYNC_LOSS_WINDOW)
    return acked, in_window


def drain(cluster, keys, label, expected, clients=16):
    """`clients` connections verify `keys` (client i: keys[i % len]) until each is refused
    with USAGE_EXCEEDED: exactly `expected` VALID among them."""
    racers = [Client(cluster, lambda conn, k=keys[i % len(keys)]: verify(conn, k), 100, 1_000_000,
                     expect=("VALID", "USAGE_EXCEEDED")) for i in range(clients)]
    errors_seen = run_clients(racers, 110)
    if errors_seen:
        raise CheckFailed(f"{label}: a client draining the rest got {errors_seen[0]}")
    valid = sum(c.codes.get("VALID", 0) for c in racers)
    check(valid == expected and all(c.codes.get("USAGE_EXCEEDED") for c in racers),
          f"{label}: after recovery, {clients} clients drain the {expected} uses left: exactly {expected} VALID, "
          "then every client is refused", f"got {valid} VALID")


def exhaust(cluster, key_id, key, admin, label, uses=20):
    """Give the key `uses` uses; 8 clients racing to exhaustion get exactly that many VALID."""
    admin.execute("SELECT apikey.update_api_key(%s, remaining => %s)", (key_id, uses))
    clients = [Client(cluster, lambda conn: verify(conn, key), 30, 500, expect=("VALID", "USAGE_EXCEEDED"))
               for _ in range(CLIENTS)]
    errors_seen = run_clients(clients, 40)
    if errors_seen:
        raise CheckFailed(f"{label}: a client racing to exhaustion got {errors_seen[0]}")
    valid = sum(c.codes.get("VALID", 0) for c in clients)
    check(valid == uses and all(c.codes.get("USAGE_EXCEEDED") for c in clients),
          f"{label}: after recovery, {CLIENTS} clients racing on remaining => {uses} get exactly {uses} VALID",
          f"got {valid} VALID")
    check(remaining_of(admin, key_id) == 0, f"{label}: the quota is then at 0")


def group_crash_usage():
    cluster = Cluster("crash-usage").fresh()

    # Durable (the default): no acknowledged use may be lost. 16 clients on one hot key, so
    # that its count is spread over budget slots when the crash comes.
    with cluster.connect() as admin:
        key_id, key = create_key(admin, remaining=HOT_QUOTA)
    acked, _ = crash_under_load(cluster, key, "durable usage, one hot key", clients=HOT_CLIENTS)
    with cluster.connect() as admin:
        recorded = HOT_QUOTA - remaining_of(admin, key_id)
        slots = admin.execute("SELECT count(*) FROM apikey.key_slots WHERE key_id = %s", (key_id,)).fetchone()[0]
        figure(f"durable usage, one hot key: {acked} acknowledged, {recorded} recorded after crash recovery, "
               f"{slots} budget slots")
        check(slots >= 2, "durable usage, one hot key: its count was spread over budget slots at the crash",
              f"{slots} slots")
        check(acked >= 50, "durable usage, one hot key: the crash came under real load", f"only {acked} uses acknowledged")
        check(acked <= recorded, "durable usage, one hot key: no acknowledged use lost in the crash",
              f"{acked} acknowledged, {recorded} recorded")
        check(recorded <= acked + HOT_CLIENTS,
              "durable usage, one hot key: recorded uses exceed acknowledged ones by at most the verifies in flight",
              f"{recorded} recorded, {acked} acknowledged, {HOT_CLIENTS} clients")
        drain(cluster, [key], "durable usage, one hot key", HOT_QUOTA - recorded)
        check(remaining_of(admin, key_id) == 0, "durable usage, one hot key: the quota is then at 0")
        exhaust(cluster, key_id, key, admin, "durable usage")

        # An organization's shared quota: 8 keys, 16 clients, the count in the owner's row
        # and its slots.
        admin.execute("SELECT apikey.create_organization('shared')")
        admin.execute("SELECT apikey.set_owner_limits(org_id => 'shared', remaining => %s)", (HOT_QUOTA,))
        org_keys = [admin.execute("SELECT key FROM apikey.create_api_key(org_id => 'shared')").fetchone()[0]
                    for _ in range(8)]
    acked, _ = crash_under_load(cluster, org_keys, "durable usage, shared quota", clients=HOT_CLIENTS)
    with cluster.connect() as admin:
        owner_left = lambda: admin.execute(  # noqa: E731
            "SELECT remaining FROM apikey.get_owner_limits(org_id => 'shared')").fetchone()[0]
        recorded = HOT_QUOTA - owner_left()
        slots = admin.execute("SELECT count(*) FROM apikey.owner_slots WHERE owner_id = 'shared'").fetchone()[0]
        figure(f"durable usage, shared quota: {acked} acknowledged, {recorded} recorded after crash recovery, "
               f"{slots} budget slots")
        check(slots >= 2, "durable usage, shared quota: its count was spread over budget slots at the crash",
              f"{slots} slots")
        check(acked >= 50, "durable usage, shared quota: the crash came under real load", f"only {acked} acknowledged")
        check(acked <= recorded <= acked + HOT_CLIENTS,
              "durable usage, shared quota: acknowledged <= recorded <= acknowledged + verifies in flight",
              f"{recorded} recorded, {acked} acknowledged, {HOT_CLIENTS} clients")
        drain(cluster, org_keys, "durable usage, shared quota", HOT_QUOTA - recorded)
        check(owner_left() == 0, "durable usage, shared quota: the organization's quota is then at 0")
        amcheck(admin, "durable usage crash")

        # apikey.usage_synchronous_commit = off: a bounded loss.
        admin.execute("LOAD 'pg_apikey'")
        admin.execute("ALTER SYSTEM SET apikey.usage_synchronous_commit = off")
        admin.execute("SELECT pg_reload_conf()")
        key_id, key = create_key(admin, remaining=QUOTA)

    def setting_is_off():
        with cluster.connect() as conn:
            conn.execute("LOAD 'pg_apikey'")
            return conn.execute("SHOW apikey.usage_synchronous_commit").fetchone()[0] == "off"
    wait_until(setting_is_off, "ALTER SYSTEM SET apikey.usage_synchronous_commit = off takes effect", 10)
    ok("apikey.usage_synchronous_commit = off in new sessions after ALTER SYSTEM and reload")

    acked, last_second = crash_under_load(cluster, key, "async usage")
    with cluster.connect() as admin:
        check(admin.execute("SHOW apikey.usage_synchronous_commit").fetchone()[0] == "off",
              "async usage: the setting survives the crash")
        recorded = QUOTA - remaining_of(admin, key_id)
        lost = max(0, acked - recorded)
        figure(f"async usage commit lost {lost} of {acked} acknowledged uses "
               f"({last_second} acknowledged in the last {ASYNC_LOSS_WINDOW} s before the crash)")
        check(acked >= 50, "async usage: the crash came under real load", f"only {acked} uses acknowledged")
        check(lost <= last_second,
              f"async usage: the uses lost are at most those acknowledged in the last {ASYNC_LOSS_WINDOW} s "
              "before the crash (3 × wal_writer_delay, as docs/operations.md says)",
              f"lost {lost}, {last_second} acknowledged in that window")
        check(recorded <= acked + CLIENTS,
              "async usage: recorded uses exceed acknowledged ones by at most the verifies in flight",
              f"{recorded} recorded, {acked} acknowledged")
        exhaust(cluster, key_id, key, admin, "async usage")
        amcheck(admin, "async usage crash")


# ---------------------------------------------------------------- 2. crash-create

def group_crash_create():
    cluster = Cluster("crash-create").fresh()
    with cluster.connect() as admin:
        admin.execute("CREATE ROLE svc LOGIN IN ROLE apikey_service")
    received = {}            # key_id -> key text, for every key a client received
    lock = threading.Lock()

    class Maker(Client):
        """Creates a key, rotates it twice (grace 1 hour), creates the next one..."""

        def __init__(self, n):
            self.n, self.latest, self.i = n, None, 0
            super().__init__(cluster, self.make, 30, 100_000, user="svc")

        def make(self, conn):
            self.i += 1
            if self.i % 3 == 1:
                row = create_key(conn, name=f"client{self.n}-{self.i}",
                                 metadata=json.dumps({"client": self.n, "i": self.i}))
            else:
                row = conn.execute("SELECT key_id, key FROM apikey.rotate_api_key(%s, grace => '1 hour')",
                                   (self.latest,)).fetchone()
            self.latest = row[0]
            with lock:
                received[row[0]] = row[1]
            return "VALID"

    makers = [Maker(n) for n in range(4)]
    for m in makers:
        m.start()
    for m in makers:
        if not m.ready.wait(20) or not m.acks:
            raise CheckFailed(f"crash during create/rotate: a client made no key ({m.error})")
    time.sleep(2.0)
    children = cluster.crash()
    for m in makers:
        m.join(20)
    errors_seen = [m.error for m in makers if m.error]
    if errors_seen:
        raise CheckFailed(f"crash during create/rotate: a client got {errors_seen[0]} before the crash")
    check(all(m.lost for m in makers),
          f"crash during create/rotate: kill -9 of the postmaster and its {children} children hit all 4 clients mid-load")
    cluster.start()
    figure(f"crash during create/rotate: {len(received)} keys received before the crash")

    with cluster.connect() as admin:
        ids, keys = list(received), [received[i] for i in received]
        bad = admin.execute("""
            SELECT k.key_id, v.code FROM unnest(%s::uuid[], %s::text[]) AS k (key_id, key),
                   LATERAL apikey.verify_api_key(k.key) v
             WHERE v.code IS DISTINCT FROM 'VALID' OR v.key_id IS DISTINCT FROM k.key_id""", (ids, keys)).fetchall()
        check(len(received) >= 20 and not bad,
              f"crash during create/rotate: all {len(received)} keys received before the crash verify VALID",
              f"{len(bad)} do not, e.g. {bad[:3]}")
        rows = admin.execute("SELECT count(*) FROM apikey.keys").fetchone()[0]
        check(len(received) <= rows <= len(received) + len(makers),
              "crash during create/rotate: keys stored = keys received + at most one in flight per client",
              f"{rows} stored, {len(received)} received")
        orphans = admin.execute("""
            SELECT count(*) FROM apikey.audit_log a
             WHERE a.action IN ('key_created', 'key_rotated')
               AND (a.key_id IS NULL OR NOT EXISTS (SELECT 1 FROM apikey.keys k WHERE k.id = a.key_id))""").fetchone()[0]
        check(orphans == 0, "crash during create/rotate: no key_created/key_rotated audit row without its key",
              f"{orphans} such rows")
        unaudited = admin.execute("""
            SELECT count(*) FROM apikey.keys k
             WHERE (SELECT count(*) FROM apikey.audit_log a WHERE a.action = 'key_created' AND a.key_id = k.id) <> 1
                OR (k.replaced_by IS NOT NULL) <> EXISTS (SELECT 1 FROM apikey.audit_log a
                                                          WHERE a.action = 'key_rotated' AND a.key_id = k.id)""").fetchone()[0]
        check(unaudited == 0,
              "crash during create/rotate: every key has exactly one key_created row, and a key_rotated row iff it was rotated",
              f"{unaudited} keys do not")
        broken_links = admin.execute("""
            SELECT count(*) FROM apikey.keys k
             WHERE (k.replaced_by IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM apikey.keys n WHERE n.id = k.replaced_by AND n.rotated_from = k.id))
                OR (k.rotated_from IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM apikey.keys o WHERE o.id = k.rotated_from AND o.replaced_by = k.id))""").fetchone()[0]
        check(broken_links == 0, "crash during create/rotate: rotation links (replaced_by / rotated_from) all pair up",
              f"{broken_links} broken")
        amcheck(admin, "crash during create/rotate")


# ---------------------------------------------------------------- 3. standby

def group_standby():
    primary = Cluster("standby-primary").fresh()
    with primary.connect() as p:
        plain_id, plain = create_key(p)
        _, plain_used = create_key(p)
        check(verify(p, plain_used) == "VALID", "standby: a plain key verifies VALID on the primary")
        quota_id, quota = create_key(p, remaining=10)
        _, limited = create_key(p, rate_limit_max=5, rate_limit_window="1 minute")
        _, both = create_key(p, remaining=10, rate_limit_max=5, rate_limit_window="1 minute")
        _, named = create_key(p, rate_limits='[{"name": "burst", "limit": 5, "window": "1 second"}]')
        # 0.2.0: an organization with owner limits, whose key has no limits of its own.
        p.execute("SELECT apikey.create_organization('planned')")
        p.execute("SELECT apikey.set_owner_limits(org_id => 'planned', remaining => 100)")
        owned = p.execute("SELECT key FROM apikey.create_api_key(org_id => 'planned')").fetchone()[0]
        doomed_id, doomed = create_key(p)
    standby = Cluster("standby-standby", PORT + 1)
    standby.ctl("basebackup", primary.dir, primary.port, standby.dir)
    standby.start()
    with standby.connect() as s, primary.connect() as p:
        check(s.execute("SELECT pg_is_in_recovery()").fetchone()[0], "standby: pg_basebackup -R made a hot standby")
        codes = [verify(s, k) for k in (plain, plain, plain_used, doomed)]
        check(codes == ["VALID"] * 4, "standby: plain keys (never verified, and verified on the primary) verify VALID",
              f"codes {codes}")
        check(verify(s, plain) == "VALID", "standby: a key of an owner without limits verifies while other owners have some")
        check(s.execute("SELECT code FROM apikey.verify_api_key(%s, cost => 0)", (named,)).fetchone()[0] == "VALID",
              "standby: a call of cost 0 counts nothing, so a key with named rate limits verifies")
        for what, key in (("a quota", quota), ("a rate limit", limited), ("a quota and a rate limit", both),
                          ("named rate limits", named), ("an owner with limits", owned)):
            try:
                code = verify(s, key)
                raise CheckFailed(f"standby: a key with {what} answered {code} instead of raising 25006")
            except errors.ReadOnlySqlTransaction:
                ok(f"standby: a key with {what} raises 25006 (read_only_sql_transaction)")
            except psycopg.Error as e:
                raise CheckFailed(f"standby: a key with {what} raised {e.sqlstate} instead of 25006: {e}")
        check(verify(s, plain) == "VALID", "standby: the session still verifies after the 25006 errors")
        read = (s.execute("SELECT name FROM apikey.get_api_key(%s)", (plain_id,)).fetchone()[0],
                s.execute("SELECT count(*) FROM apikey.list_api_keys(org_id => 'o')").fetchone()[0],
                s.execute("SELECT remaining FROM apikey.get_owner_limits(org_id => 'planned')").fetchone()[0])
        check(read[1] >= 7 and read[2] == 100,
              "standby: management reads (get_api_key, list_api_keys, get_owner_limits) answer", f"{read}")

        p.execute("SELECT apikey.revoke_api_key(%s)", (doomed_id,))
        _, fresh = create_key(p)
        target = p.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        wait_until(lambda: s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0],
                   "standby replays the primary's revoke and new key", 30)
        codes = (verify(s, doomed), verify(s, fresh))
        check(codes == ("KEY_NOT_FOUND", "VALID"),
              "standby: after replay the key revoked on the primary is KEY_NOT_FOUND and the new one VALID",
              f"codes {codes}")
        check(remaining_of(p, quota_id) == 10, "standby: the refused verifies on the standby spent no quota")
        check(verify(p, quota) == "VALID" and remaining_of(p, quota_id) == 9,
              "standby: the quota key still counts on the primary")


# ---------------------------------------------------------------- 4a. fuzz-keys

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ODD_CHARS = ["é", "ß", "İ", "ı", "Ω", "😀", "\u200b", "\u202e", "\u0301", "\ufeff", "\u00a0", " ", "\t",
             "\n", "\r", "'", '"', "\\", "%", "_", "-", ".", "/", "\x7f", "\x01", "\U0010fffd", "ﬀ", "Ａ"]


def checksum(body):
    """CRC32 of prefix + secret as 6 base62 digits, big-endian (docs/sql-reference.md: Keys)."""
    n = zlib.crc32(body.encode())
    digits = ""
    for _ in range(6):
        n, d = divmod(n, 62)
        digits = ALPHABET[d] + digits
    return digits


def rand_char(rng):
    r = rng.random()
    if r < 0.5:
        return rng.choice(ALPHABET)
    if r < 0.8:
        return rng.choice(ODD_CHARS)
    while True:                                   # any code point but NUL and surrogates
        c = rng.randrange(1, 0x110000)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def rand_string(rng, length):
    return "".join(rand_char(rng) for _ in range(length))


def mutations(rng, key, prefix):
    """(kind, text) pairs derived from one real key."""
    i = rng.randrange(len(key))
    secret = key[len(prefix):-6]
    other_prefix = rng.choice(["ak_", "dp_live_", "sk_", "x", "AK_", "ak-", "a" * 32, "ak__", ""])
    j = rng.randrange(len(secret))
    forged_secret = secret[:j] + rng.choice(ALPHABET.replace(secret[j], "")) + secret[j + 1:]
    return [
        ("one character changed", key[:i] + rand_char(rng) + key[i + 1:]),
        ("one character inserted", key[:i] + rand_char(rng) + key[i:]),
        ("one character deleted", key[:i] + key[i + 1:]),
        ("truncated", key[:rng.randrange(len(key))]),
        ("adjacent characters swapped", key[:i] + key[i + 1:i + 2] + key[i:i + 1] + key[i + 2:]),
        ("case of one character flipped", key[:i] + key[i].swapcase() + key[i + 1:]),
        ("other prefix", other_prefix + key[len(prefix):]),
        ("other prefix, checksum recomputed", other_prefix + secret + checksum(other_prefix + secret)),
        ("one secret character changed, checksum recomputed", prefix + forged_secret + checksum(prefix + forged_secret)),
        ("wrapped in whitespace", rng.choice([" ", "\t", "\n", "\u00a0"]) + key + rng.choice(["", " ", "\n"])),
        ("repeated", key + key[:rng.randrange(1, len(key))]),
        ("unicode appended", key + rand_string(rng, rng.randrange(1, 4))),
    ]


def random_inputs(rng):
    """(kind, text) pairs that are not derived from a key."""
    body_prefix = rng.choice(["ak_", "dp_live_", "zz", "A-b_C"])
    body = body_prefix + "".join(rng.choice(ALPHABET) for _ in range(43))
    return [
        ("random string", rand_string(rng, rng.randrange(0, 80))),
        ("random base62 string", "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 120)))),
        ("forged key with a correct checksum", body + checksum(body)),
        ("10k-long string", rand_string(rng, 10_000)),
    ]


def group_fuzz_keys():
    seed = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(1 << 32))
    figure(f"fuzz-keys seed {seed} (replay with FAULTS_SEED={seed})")
    rng = random.Random(seed)
    cluster = Cluster("fuzz-keys").fresh()
    with cluster.connect() as conn:
        real = [(create_key(conn)[1], "ak_") for _ in range(3)]
        real += [(create_key(conn, prefix=p)[1], p) for p in ("dp_live_", "x", "A-b_C" * 6 + "zz")]
        revoked_id, revoked = create_key(conn)
        conn.execute("SELECT apikey.revoke_api_key(%s)", (revoked_id,))
        real_keys = {k for k, _ in real}
        check(all(verify(conn, k) == "VALID" for k in real_keys), "fuzz-keys: the real keys verify VALID")
        check(all(checksum(k[:-6]) == k[-6:] for k in real_keys),
              "fuzz-keys: forged keys get their checksum computed as real keys have it")

        cases = [("NULL", None), ("empty string", ""), ("revoked key", revoked),
                 ("100k-long string", "a" * 100_000), ("10k-long base62", "ak_" + "Z" * 10_000),
                 ("well-formed all-zero key", "ak_" + "0" * 43 + checksum("ak_" + "0" * 43))]
        for _ in range(130):
            key, prefix = rng.choice(real)
            cases += mutations(rng, key, prefix)
        for _ in range(150):
            cases += random_inputs(rng)
        cases += [(kind, text) for kind, text in mutations(rng, revoked, "ak_")]
        cases = [(kind, text) for kind, text in cases if text not in real_keys]

        counts = {}
        for kind, text in cases:
            try:
                rows = conn.execute("SELECT valid, code, key_id, org_id, permissions FROM apikey.verify_api_key(%s)",
                                    (text,), prepare=True).fetchall()
            except psycopg.Error as e:
                raise CheckFailed(f"fuzz-keys: {kind} {short(text)!r} raised {e.sqlstate}: {e}")
            if rows != [(False, "KEY_NOT_FOUND", None, None, None)]:
                raise CheckFailed(f"fuzz-keys: {kind} {short(text)!r} answered {rows} instead of one "
                                  "KEY_NOT_FOUND row with no key data")
            counts[kind] = counts.get(kind, 0) + 1
        figure("fuzz-keys: " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
        check(sum(counts.values()) == len(cases) and len(cases) >= 500,
              f"fuzz-keys: {len(cases)} random and mutated keys each answer one KEY_NOT_FOUND row with no key data",
              f"{sum(counts.values())} answered of {len(cases)}")
        check(all(verify(conn, k) == "VALID" for k in real_keys), "fuzz-keys: the real keys still verify VALID")
    with cluster.connect() as conn:
        check(conn.execute("SELECT 1").fetchone()[0] == 1, "fuzz-keys: the server is alive and accepts connections")


# ---------------------------------------------------------------- 4b. fuzz-json

class Num:
    """A JSON number, kept as its exact text."""

    def __init__(self, text):
        self.text = text


def parse_plain(text):
    """A JSON text as plain Python values (numbers as numbers), duplicate keys: the last
    wins, as in jsonb."""
    return json.loads(text, parse_constant=lambda c: c)


def parse(text):
    """A JSON text as a value tree, numbers kept as Num (duplicate keys: the last wins,
    as in jsonb)."""
    return json.loads(text, parse_int=Num, parse_float=Num, parse_constant=Num)


SPECIAL_NUMBERS = ["123456789012345678901234567890", "18446744073709551617", "-18446744073709551617",
                   "9223372036854775808", "9007199254740993", "0.1000000000000000000001", "1e400", "-1e400",
                   "1E-400", "2.5e-324", "1.7976931348623157e309", "1.0", "1.000", "-0", "0.0", "3.14159265358979323846264338327950288"]
SPECIAL_STRINGS = ["", "é", "😀", "\u200b", "\u202e", "a\"b", "\\", "\n\t", "\u00e9\u0301", "\U0010fffd", "ﬀ"]
POOL_RESOURCES = ["files", "mesa", "ünï", "a b"]
POOL_ACTIONS = ["read", "write", "admin", "✓"]
GRANTED = {"files": ["read", "write"], "mesa": ["admin"], "ünï": ["✓"], "a b": ["read"], "billing": ["*"]}
POOL_RESOURCES.append("billing")


def dump(value, rng):
    """JSON text of a value tree (dict, list, str, Num, bool, None); strings sometimes
    with \\u escapes."""
    if isinstance(value, Num):
        return value.text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=rng.random() < 0.5)
    if isinstance(value, list):
        return "[" + ", ".join(dump(v, rng) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{dump(k, rng)}: {dump(v, rng)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def rand_number(rng):
    r = rng.random()
    if r < 0.4:
        return Num(rng.choice(SPECIAL_NUMBERS))
    if r < 0.7:
        return Num(str(rng.randint(-10 ** rng.randrange(1, 40), 10 ** rng.randrange(1, 40))))
    return Num(repr(rng.uniform(-1e6, 1e6)))


def rand_text(rng):
    r = rng.random()
    if r < 0.3:
        return rng.choice(SPECIAL_STRINGS)
    return "".join(rand_char(rng) for _ in range(rng.randrange(1, 12)))


def rand_value(rng, depth):
    kinds = ["null", "bool", "number", "string"] + (["array", "object"] if depth > 0 else [])
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "number":
        return rand_number(rng)
    if kind == "string":
        return rand_text(rng)
    if kind == "array":
        return [rand_value(rng, depth - 1) for _ in range(rng.randrange(0, 4))]
    return {rand_text(rng): rand_value(rng, depth - 1) for _ in range(rng.randrange(0, 4))}


def rand_permissions(rng):
    """Mostly well-formed {resource: [action, ...]}, from a small pool (so that
    containment in GRANTED happens) or random text; sometimes with one defect."""
    perms = {}
    for _ in range(rng.randrange(0, 4)):
        resource = rng.choice(POOL_RESOURCES) if rng.random() < 0.7 else rand_text(rng)
        perms[resource] = [rng.choice(POOL_ACTIONS) if rng.random() < 0.7 else rand_text(rng)
                           for _ in range(rng.randrange(0, 3))]
    r = rng.random()
    if r < 0.55:
        return perms
    if r < 0.7:                                   # not an object at all
        return rng.choice([[], [perms], "read", Num(rng.choice(SPECIAL_NUMBERS)), None, True, rand_value(rng, 2)])
    resource = rand_text(rng) if rng.random() < 0.8 else ""
    if r < 0.85:                                  # an action that is not a non-empty string
        perms[resource] = [rng.choice(POOL_ACTIONS), rng.choice([rand_number(rng), None, False, [], {}, ["read"], ""])]
    else:                                         # actions that are not an array
        perms[resource] = rng.choice([rand_number(rng), "read", None, True, {"read": True}, {}])
    return perms


def valid_permissions(value):
    """Granted permissions: {resource: [action, ...]}, resources not empty and not starting
    with $ (which marks a query)."""
    return (isinstance(value, dict)
            and all(k != "" and not k.startswith("$") and isinstance(v, list)
                    and all(isinstance(a, str) and a != "" for a in v)
                    for k, v in value.items()))


MAX_QUERY_DEPTH = 32


def requirement(value, depth=0):
    """The requirement a required_permissions value states, as a predicate over the granted
    permissions (a dict, or None), or None when it is malformed (docs/sql-reference.md: verify_api_key)."""
    if not isinstance(value, dict):
        return None
    ops = [k for k in value if k.startswith("$")]
    if not ops:
        if not all(k != "" and isinstance(v, list) and all(isinstance(a, str) and a != "" for a in v)
                   for k, v in value.items()):
            return None
        items = list(value.items())
        return lambda granted: all(
            granted is not None and isinstance(granted.get(r), list)
            and all(a in granted[r] or "*" in granted[r] for a in acts)
            for r, acts in items)
    if len(value) != 1 or ops[0] not in ("$all", "$any") or depth + 1 > MAX_QUERY_DEPTH:
        return None
    operands = value[ops[0]]
    if not isinstance(operands, list) or not operands:
        return None
    parts = [requirement(q, depth + 1) for q in operands]
    if any(p is None for p in parts):
        return None
    combine = all if ops[0] == "$all" else any
    return lambda granted: combine(p(granted) for p in parts)


def rand_query(rng, depth):
    """A $all/$any query over random permission objects (sometimes malformed)."""
    op = rng.choice(["$all", "$any", "$all", "$any", "$none"])
    if depth <= 0 or rng.random() < 0.4:
        operands = [rand_permissions(rng) for _ in range(rng.randrange(0, 3))]
    else:
        operands = [rand_query(rng, depth - 1) if rng.random() < 0.5 else rand_permissions(rng)
                    for _ in range(rng.randrange(1, 3))]
    query = {op: operands}
    if rng.random() < 0.05:
        query["files"] = ["read"]                  # an operator beside a resource
    return query


def nested(levels, leaf):
    text = json.dumps(leaf)
    for i in range(levels):
        text = f'{{"l{i}": {text}}}' if i % 2 else f"[{text}, {i}]"
    return text


METADATA_CASES = [
    '{"n": 123456789012345678901234567890}', '{"n": 18446744073709551617}',
    '{"f": 0.1000000000000000000001}', '{"big": 1e400}', '{"small": -1e400, "tiny": 1E-400}',
    '{"scale": [1.0, 1.000, -0, 0.0, 2.5e-324]}', '{"pi": 3.14159265358979323846264338327950288}',
    '{"deep": ' + nested(140, "bottom") + '}', '{"deep": ' + nested(140, 1e-7) + '}',
    '{"\\u00e9\\u0301": "\\ud83d\\ude00 \\u200b \\u202e", "esc": "\\"\\\\\\/\\b\\f\\n\\r\\t"}',
    '{"a": 1, "a": 2}', '{}', '{"": null}',
    '{"wide": [' + ", ".join(str(10 ** 30 + i) for i in range(200)) + ']}',
]
QUERY_CASES = [
    '{"$all": [{"files": ["read"]}, {"mesa": ["admin"]}]}', '{"$any": [{"files": ["delete"]}, {"billing": ["refund"]}]}',
    '{"$all": []}', '{"$any": {}}', '{"$none": [{}]}', '{"$all": [{}], "files": ["read"]}', '{"$any": [1]}',
    '{"$all": [{"$any": [{"files": ["write"]}, {"x": ["y"]}]}, {"billing": ["*"]}]}',
    '{"files": ["*"]}', '{"$files": ["read"]}',
    "".join(['{"$all": ['] * 32) + '{"files": ["read"]}' + "]}" * 32,
    "".join(['{"$all": ['] * 33) + '{"files": ["read"]}' + "]}" * 33,
]
PERMISSIONS_CASES = [
    '{"files": ["read", "write"], "mesa": ["admin"]}', '{}', '{"files": []}',
    '{"\\u00e9": ["\\ud83d\\ude00"]}', '{"files": ["read"], "files": ["write"]}',
    '{"files": [1e400]}', '{"files": [123456789012345678901234567890]}', '{"files": ["read", 0.1000000000000000000001]}',
    '{"files": "read"}', '["files"]', '"files"', '1e400', 'null', 'true', '{"": ["read"]}', '{"files": [""]}',
    '{"files": [["read"]]}', '{"files": ' + nested(140, "read") + '}',
]


def expect_outcome(conn, sql, params, expect_ok, what, text):
    """Run sql; it must succeed when expect_ok, else fail with 22023. Returns the row."""
    try:
        row = conn.execute(sql, params).fetchone()
    except psycopg.Error as e:
        if conn.broken:
            raise CheckFailed(f"{what} {short(text)}: the server went away: {e}")
        if expect_ok or e.sqlstate != "22023":
            raise CheckFailed(f"{what} {short(text)}: raised {e.sqlstate} "
                              f"({'expected success' if expect_ok else 'expected 22023'}): {short(str(e), 300)}")
        return None
    if not expect_ok:
        raise CheckFailed(f"{what} {short(text)}: accepted a malformed value (expected 22023)")
    return row


def stored_equal(conn, key_id, key, column, text, what):
    """The value read back from get_api_key and from verify's row is the given JSON as
    jsonb, to the letter of its text (jsonb's = would take 1.000 for 1 and -0 for 0)."""
    got, eq = conn.execute(f"SELECT {column}::text, %s::jsonb::text = {column}::text FROM apikey.get_api_key(%s)",
                           (text, key_id)).fetchone()
    if not eq:
        raise CheckFailed(f"{what}: {short(text)} was stored as {short(got)} (get_api_key)")
    code, got, eq = conn.execute(f"SELECT code, {column}::text, %s::jsonb::text = {column}::text FROM apikey.verify_api_key(%s)",
                                 (text, key)).fetchone()
    if code != "VALID" or not eq:
        raise CheckFailed(f"{what}: {short(text)} read back as {short(got)} from verify ({code})")


def group_fuzz_json():
    seed = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(1 << 32))
    figure(f"fuzz-json seed {seed} (replay with FAULTS_SEED={seed})")
    rng = random.Random(seed)
    cluster = Cluster("fuzz-json").fresh()
    with cluster.connect() as conn:
        granted_text = json.dumps(GRANTED)
        _, granted_key = create_key(conn, permissions=granted_text)
        _, bare_key = create_key(conn)

        # verify's required_permissions: VALID / INSUFFICIENT_PERMISSIONS as the
        # requirement says (objects, $all/$any queries, "*" grants), or 22023.
        inputs = PERMISSIONS_CASES + QUERY_CASES + [dump(rand_permissions(rng), rng) for _ in range(300)]
        inputs += [dump(rand_query(rng, 3), rng) for _ in range(200)]
        answered = {}
        for text in inputs:
            req = requirement(parse_plain(text))
            for key, granted in ((granted_key, GRANTED), (bare_key, None), ("ak_garbage", None)):
                sql = "SELECT v.code FROM apikey.verify_api_key(%s, %s::jsonb) v"
                row = expect_outcome(conn, sql, (key, text), req is not None,
                                     "verify's required_permissions", text)
                if row is None:
                    answered["22023"] = answered.get("22023", 0) + 1
                    continue
                code = row[0]
                if key == "ak_garbage":
                    expected = "KEY_NOT_FOUND"
                else:
                    expected = "VALID" if req(granted) else "INSUFFICIENT_PERMISSIONS"
                if code != expected:
                    raise CheckFailed(f"verify's required_permissions {short(text)}: answered {code}, "
                                      f"expected {expected} (granted {json.dumps(granted)})")
                answered[code] = answered.get(code, 0) + 1
        figure("fuzz-json required_permissions answers: " + ", ".join(f"{n} {c}" for c, n in sorted(answered.items())))
        check(sum(answered.values()) == 3 * len(inputs)
              and {"VALID", "INSUFFICIENT_PERMISSIONS", "KEY_NOT_FOUND", "22023"} <= answered.keys(),
              f"fuzz-json: {len(inputs)} required_permissions values (objects and $all/$any queries) "
              "answer as the requirement says, or 22023 exactly when malformed",
              f"answers {answered} for {len(inputs)} values on 3 keys")

        # create_api_key's permissions: stored as given, or 22023.
        created = refused = 0
        inputs = PERMISSIONS_CASES + [dump(rand_permissions(rng), rng) for _ in range(150)]
        for text in inputs:
            sql = "SELECT key_id, key, %s::jsonb::text = permissions::text FROM apikey.create_api_key(org_id => 'o', permissions => %s::jsonb)"
            row = expect_outcome(conn, sql, (text, text), valid_permissions(parse(text)), "create_api_key permissions", text)
            if row is None:
                refused += 1
                continue
            key_id, key, eq = row
            if not eq:
                raise CheckFailed(f"create_api_key permissions {short(text)}: returned a different value")
            stored_equal(conn, key_id, key, "permissions", text, "create_api_key permissions")
            created += 1
        check(created + refused == len(inputs) and created > 0 and refused > 0,
              f"fuzz-json: create_api_key permissions: {created} stored exactly as given, "
              f"{refused} malformed refused with 22023", f"of {len(inputs)} inputs")

        # create_api_key's metadata: any JSON object, stored as given; anything else 22023.
        created = refused = 0
        inputs = METADATA_CASES + [dump(rand_value(rng, 5), rng) for _ in range(150)]
        inputs += [dump({rand_text(rng): rand_value(rng, 4) for _ in range(rng.randrange(1, 6))}, rng) for _ in range(100)]
        for text in inputs:
            is_object = isinstance(parse(text), dict)
            sql = "SELECT key_id, key, %s::jsonb::text = metadata::text FROM apikey.create_api_key(org_id => 'o', metadata => %s::jsonb)"
            row = expect_outcome(conn, sql, (text, text), is_object, "create_api_key metadata", text)
            if row is None:
                refused += 1
                continue
            key_id, key, eq = row
            if not eq:
                got = conn.execute("SELECT metadata::text FROM apikey.get_api_key(%s)", (key_id,)).fetchone()[0]
                raise CheckFailed(f"create_api_key metadata {short(text)}: returned and stored as {short(got)}")
            stored_equal(conn, key_id, key, "metadata", text, "create_api_key metadata")
            created += 1
        check(created + refused == len(inputs) and created > 0 and refused > 0,
              f"fuzz-json: create_api_key metadata: {created} objects stored exactly as given "
              f"(big numbers, 1e400, 140 levels deep, unicode escapes), {refused} non-objects refused with 22023",
              f"of {len(inputs)} inputs")
    with cluster.connect() as conn:
        check(conn.execute("SELECT 1").fetchone()[0] == 1, "fuzz-json: the server is alive and accepts connections")


# ---------------------------------------------------------------- 5. maintenance

def group_maintenance():
    cluster = Cluster("maintenance").fresh()
    with cluster.connect() as admin:
        plain = [create_key(admin)[1] for _ in range(2)]
        quota = [create_key(admin, remaining=1_000_000) for _ in range(2)]
        for key in plain:
            verify(admin, key)

        class Verifier(Client):
            def __init__(self, n):
                self.n, self.i = n, 0
                super().__init__(cluster, self.step_, 60, 200_000)

            def step_(self, conn):
                self.i += 1
                if self.i % 2:
                    return verify(conn, plain[self.n % 2])
                code = verify(conn, quota[self.n % 2][1])
                self.quota_valid = getattr(self, "quota_valid", 0) + (code == "VALID")
                return code

        verifiers = [Verifier(n) for n in range(4)]
        for v in verifiers:
            v.start()
        for v in verifiers:
            v.ready.wait(20)
        statements = ["REINDEX TABLE apikey.keys", "VACUUM FULL apikey.keys", "ANALYZE apikey.keys",
                      "CREATE INDEX faults_tmp_idx ON apikey.keys (created_at, name)", "DROP INDEX apikey.faults_tmp_idx"]
        done, maintenance_error, stalled = [], None, []
        calls = lambda: [sum(v.codes.values()) for v in verifiers]  # noqa: E731
        started = time.monotonic()
        for _ in range(3):
            for sql in statements:
                if maintenance_error or time.monotonic() - started > 60:
                    break
                before = calls()
                try:
                    admin.execute(sql)
                    done.append(sql)
                except psycopg.Error as e:
                    maintenance_error = f"{sql}: {e.sqlstate}: {e}"
                # Every verifier answers again once the statement is over (within 5 s):
                # none is left blocked behind it.
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not all(a > b for a, b in zip(calls(), before)):
                    time.sleep(0.05)
                if not all(a > b for a, b in zip(calls(), before)):
                    stalled.append(f"{sql}: calls {before} -> {calls()}")
                time.sleep(0.3)
        while time.monotonic() - started < 4:      # at least 4 s of load
            time.sleep(0.1)
        for v in verifiers:
            v.stop.set()
        for v in verifiers:
            v.join(30)
        errors_seen = [v.error or (f"lost the connection: {v.lost}" if v.lost else None) for v in verifiers]
        errors_seen = [e for e in errors_seen if e]
        check(not errors_seen, "maintenance: no verifying client got an error during REINDEX, VACUUM FULL, "
              "ANALYZE, CREATE/DROP INDEX", errors_seen[0] if errors_seen else "")
        check(maintenance_error is None and len(done) == 3 * len(statements),
              f"maintenance: all {3 * len(statements)} maintenance statements succeeded beside the verifies",
              maintenance_error or f"only {len(done)} ran")
        verifies = sum(sum(v.codes.values()) for v in verifiers)
        figure(f"maintenance: {verifies} verifies during {len(done)} maintenance statements")
        check(not stalled and verifies >= 10 * len(done),
              "maintenance: every verifying client answered again after each REINDEX, VACUUM FULL, "
              "ANALYZE and CREATE/DROP INDEX (none left blocked)",
              "; ".join(stalled) or f"only {verifies} verifies")
        used = {}
        for v in verifiers:
            used[v.n % 2] = used.get(v.n % 2, 0) + getattr(v, "quota_valid", 0)
        for n, (key_id, _) in enumerate(quota):
            left = remaining_of(admin, key_id)
            check(left == 1_000_000 - used.get(n, 0),
                  f"maintenance: quota key {n + 1} counted every VALID answer exactly",
                  f"{used.get(n, 0)} VALID, remaining {left}")
        amcheck(admin, "maintenance")

        # The known deadlock: a plain verify's locks held by a statement that then
        # verifies a quota key, while REINDEX waits in between.
        plain_key, (_, quota_key) = plain[0], quota[0]
        result = {}

        def session_a():
            try:
                with cluster.connect() as a:
                    result["a"] = a.execute(
                        "SELECT (SELECT code FROM apikey.verify_api_key(%s)), pg_sleep(2), "
                        "(SELECT code FROM apikey.verify_api_key(%s))", (plain_key, quota_key)).fetchone()
            except psycopg.Error as e:
                result["a"] = f"{e.sqlstate}: {e}"

        a = threading.Thread(target=session_a, daemon=True)
        a.start()
        time.sleep(0.5)
        try:
            with cluster.connect() as b:
                b.execute("REINDEX TABLE apikey.keys")
            result["b"] = "ok"
        except psycopg.Error as e:
            result["b"] = f"{e.sqlstate}: {e}"
        a.join(40)
        row = result.get("a")
        check(not a.is_alive() and isinstance(row, tuple) and (row[0], row[2]) == ("VALID", "VALID") and result["b"] == "ok",
              "maintenance: verify plain key, pg_sleep(2), verify quota key in one statement "
              "with REINDEX TABLE apikey.keys 0.5 s in: both succeed (no deadlock)",
              f"session A: {result.get('a', 'still running')}; REINDEX: {result['b']}")


# ---------------------------------------------------------------- 7. setters

class Racer(threading.Thread):
    """One connection verifying `key` until stopped, recording (start, end, code) of every
    call; refusals are expected between the setter's rounds."""

    def __init__(self, cluster, key):
        super().__init__(daemon=True)
        self.cluster, self.key = cluster, key
        self.calls = []
        self.error = None
        self.stop = threading.Event()

    def run(self):
        try:
            with self.cluster.connect() as conn:
                deadline = time.monotonic() + 100
                while not self.stop.is_set() and time.monotonic() < deadline:
                    start = time.monotonic()
                    code = verify(conn, self.key)
                    self.calls.append((start, time.monotonic(), code))
                    if code not in ("VALID", "USAGE_EXCEEDED"):
                        self.error = f"unexpected code {code}"
                        return
                    if code == "USAGE_EXCEEDED":
                        time.sleep(0.002)
        except psycopg.Error as e:
            self.error = f"{e.sqlstate}: {e}"


def race_setter(cluster, admin, keys, set_sql, left_sql, label, rounds=5, uses=200):
    """16 racers verify `keys` (racer i: keys[i % len]) throughout; `rounds` times the
    setter sets the total to `uses` (`set_sql`) while they do. Each round: the VALID answers
    of calls that started after the setter returned are at most `uses`, those of calls that
    ended after it was sent at least `uses` (calls in flight may have spent the old or the
    new total), the total is then spent to 0 (`left_sql`), and no racer ever got an error."""
    racers = [Racer(cluster, keys[i % len(keys)]) for i in range(HOT_CLIENTS)]
    for r in racers:
        r.start()
    try:
        for n in range(rounds):
            sent = time.monotonic()
            admin.execute(set_sql, (uses,))
            returned = time.monotonic()

            def refused_after():
                return all(any(start > returned and code == "USAGE_EXCEEDED" for start, _, code in list(r.calls))
                           for r in racers) or any(r.error for r in racers)
            wait_until(refused_after, f"{label}, round {n + 1}: every racer refused after {uses} uses", 60)
            errors_seen = [r.error for r in racers if r.error]
            if errors_seen:
                raise CheckFailed(f"{label}, round {n + 1}: a racer got {errors_seen[0]}")
            calls = [c for r in racers for c in list(r.calls)]
            surely_new = sum(1 for start, _, code in calls if code == "VALID" and start > returned)
            maybe_new = sum(1 for _, end, code in calls if code == "VALID" and end > sent)
            left = admin.execute(left_sql).fetchone()[0]
            check(surely_new <= uses <= maybe_new and left == 0,
                  f"{label}, round {n + 1}: the total set to {uses} while {HOT_CLIENTS} clients verify admits "
                  f"exactly that many (started after the set: {surely_new} <= {uses}; ended after it was sent: "
                  f"{maybe_new} >= {uses}), then 0 left")
        total = sum(1 for r in racers for _, _, code in list(r.calls) if code == "VALID")
        check(total == rounds * uses,
              f"{label}: over all {rounds} rounds exactly {rounds} × {uses} VALID (the total started at 0)",
              f"got {total}")
    finally:
        for r in racers:
            r.stop.set()
        for r in racers:
            r.join(30)


def group_setters():
    cluster = Cluster("setters").fresh()
    with cluster.connect() as admin:
        key_id, key = create_key(admin, remaining=0)
        race_setter(cluster, admin, [key], f"SELECT apikey.update_api_key('{key_id}', remaining => %s)",
                    f"SELECT remaining FROM apikey.get_api_key('{key_id}')", "update_api_key on one hot key")
        slots = admin.execute("SELECT count(*) FROM apikey.key_slots WHERE key_id = %s", (key_id,)).fetchone()[0]
        figure(f"update_api_key on one hot key: {slots} budget slots at the end")

        admin.execute("SELECT apikey.create_organization('shared')")
        admin.execute("SELECT apikey.set_owner_limits(org_id => 'shared', remaining => 0)")
        org_keys = [admin.execute("SELECT key FROM apikey.create_api_key(org_id => 'shared')").fetchone()[0]
                    for _ in range(8)]
        race_setter(cluster, admin, org_keys, "SELECT apikey.set_owner_limits(org_id => 'shared', remaining => %s)",
                    "SELECT remaining FROM apikey.get_owner_limits(org_id => 'shared')",
                    "set_owner_limits on 8 keys sharing a quota")
        amcheck(admin, "setters")


# ---------------------------------------------------------------- 6. open-txn

def group_open_txn():
    cluster = Cluster("open-txn").fresh()
    with cluster.connect() as admin:
        admin.execute("LOAD 'pg_apikey'")
        admin.execute(f"ALTER DATABASE {DB} SET apikey.last_used_resolution = 0")
        plain_id, plain = create_key(admin)
        quota_id, quota = create_key(admin, remaining=100)
    with cluster.connect() as s1, cluster.connect() as s2:
        s1.execute("LOAD 'pg_apikey'")
        check(s1.execute("SHOW apikey.last_used_resolution").fetchone()[0] in ("0", "0s"),
              "open-txn: new sessions have apikey.last_used_resolution = 0")
        before = remaining_of(s2, quota_id)
        s1.execute("BEGIN")
        row = s1.execute("SELECT code, remaining FROM apikey.verify_api_key(%s)", (quota,)).fetchone()
        s1.execute("ROLLBACK")
        check(row == ("VALID", before - 1) and remaining_of(s2, quota_id) == before,
              "open-txn: a quota verify rolled back gives the use back",
              f"verify answered {row}, remaining {before} before, {remaining_of(s2, quota_id)} after the rollback")
        check(verify(s1, quota) == "VALID" and remaining_of(s2, quota_id) == before - 1,
              "open-txn: the next committed verify spends it")

        s1.execute("BEGIN")
        code = verify(s1, plain)
        last_used = s1.execute("SELECT last_used_at FROM apikey.get_api_key(%s)", (plain_id,)).fetchone()[0]
        check(code == "VALID" and last_used is not None,
              "open-txn: session 1 verified the plain key in an open transaction (and wrote last_used_at)")
        s2.execute("SET lock_timeout = '2s'")
        started = time.monotonic()
        try:
            code = verify(s2, plain)
        except psycopg.Error as e:
            code = f"{e.sqlstate}: {e}"
        waited = time.monotonic() - started
        s1.execute("ROLLBACK")
        check(code == "VALID" and waited < 1.0,
              "open-txn: session 2 verifies the same plain key VALID at once while session 1's transaction is open",
              f"answered {short(code)} after {waited:.2f} s")



# ---------------------------------------------------------------- usage analytics

USAGE_CONF = ("shared_preload_libraries = 'pg_apikey'\n"
              "apikey.usage_flush_interval = 3600\n")   # rounds only when asked (or full)


def preloaded(name, port=PORT):
    """A fresh cluster with pg_apikey in shared_preload_libraries."""
    return Cluster(name, port).fresh(USAGE_CONF)


def usage_of(conn, key_id):
    """{code: (calls, cost)} of a key over all time, from key_usage (written + in memory)."""
    rows = conn.execute("SELECT code, sum(calls)::bigint, sum(cost)::bigint FROM apikey.key_usage(%s, "
                        "since => now() - interval '1 day', until => now() + interval '1 hour') GROUP BY code",
                        (key_id,)).fetchall()
    return {code: (calls, cost) for code, calls, cost in rows}


def written_calls(conn):
    return conn.execute("SELECT coalesce(sum(calls), 0)::bigint FROM apikey.usage_hours").fetchone()[0]


def live_calls(conn):
    return conn.execute("SELECT coalesce(sum(calls), 0)::bigint FROM apikey.usage_live()").fetchone()[0]


def group_usage():
    c = preloaded("usage")
    with c.connect() as a:
        plain_id, plain = create_key(a)
        quota_id, quota = create_key(a, remaining=1000)
        # 1. 8 clients, each 200 verifies: plain key (cost 1), quota key (cost 3) until it
        # runs out (333 admitted), and a made-up key. Counted exactly, before and after the write.
        results, errs = [], []

        def client(n):
            try:
                with c.connect() as conn:
                    codes = {}
                    for i in range(200):
                        which = (i + n) % 3
                        key = (plain, quota, "ak_made_up_key")[which]
                        code = conn.execute("SELECT code FROM apikey.verify_api_key(%s, cost => %s)",
                                            (key, 3 if which == 1 else 1)).fetchone()[0]
                        codes[code] = codes.get(code, 0) + 1
                    results.append(codes)
            except psycopg.Error as e:
                errs.append(f"{e.sqlstate}: {e}")
        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        check(not errs and len(results) == 8, "usage: 8 clients verify without an error", f"{errs}")
        codes = {}
        for r in results:
            for k, v in r.items():
                codes[k] = codes.get(k, 0) + v
        total = sum(codes.values())
        check(total == 1600, "usage: 8 clients x 200 verifies answered", f"{codes}")
        plain_calls = usage_of(a, plain_id)
        quota_calls = usage_of(a, quota_id)
        unknown = a.execute("SELECT coalesce(sum(calls), 0)::bigint FROM apikey.usage_live() WHERE key_id IS NULL "
                            "AND code = 'KEY_NOT_FOUND'").fetchone()[0]
        counted = sum(v[0] for v in plain_calls.values()) + sum(v[0] for v in quota_calls.values()) + unknown
        check(counted == 1600 and quota_calls.get("VALID") == (333, 999) and codes["KEY_NOT_FOUND"] == unknown,
              "usage: before any write, key_usage and usage_live count every call by code (admitted quota calls "
              "333 x cost 3 = 999; refused ones cost nothing)",
              f"plain {plain_calls} quota {quota_calls} unknown {unknown}")
        written = a.execute("SELECT apikey.flush_usage()").fetchone()[0]
        after = (usage_of(a, plain_id), usage_of(a, quota_id))
        check(written >= 4 and after == (plain_calls, quota_calls) and live_calls(a) == 0
              and written_calls(a) == 1600,
              f"usage: flush_usage wrote {written} counters; the same answers from the table, nothing left in memory")

        # 2. A plain verify writes nothing at all (last_used_at comes from the writer).
        # (A transaction that writes anything gets a transaction id; this one gets none.
        # With analytics off, the same verify writes last_used_at: it gets one.)
        def xid_after_verify(analytics):
            with a.transaction():
                a.execute("SET LOCAL apikey.usage_analytics = " + analytics)
                a.execute("SET LOCAL apikey.last_used_resolution = 0")
                code = verify(a, plain)
                return code, a.execute("SELECT pg_current_xact_id_if_assigned()").fetchone()[0]
        on, off = xid_after_verify("on"), xid_after_verify("off")
        check(on[0] == "VALID" and on[1] is None and off[1] is not None,
              "usage: with analytics on, a plain verify writes nothing (no transaction id; off: it writes last_used_at)",
              f"on {on}, off {off}")
        before = a.execute("SELECT last_used_at FROM apikey.keys WHERE id = %s", (plain_id,)).fetchone()[0]
        verify(a, plain)
        a.execute("SELECT apikey.flush_usage()")
        after_lu = a.execute("SELECT last_used_at FROM apikey.keys WHERE id = %s", (plain_id,)).fetchone()[0]
        check(after_lu is not None and (before is None or after_lu > before),
              "usage: the writer sets last_used_at from the counts", f"{before} -> {after_lu}")

        # 3. A clean restart loses nothing: the counters are saved at shutdown and read back
        # (and written by the writer's first round).
        a.execute("SELECT apikey.flush_usage()")
        base = written_calls(a)
        for _ in range(25):
            verify(a, plain)
        check(live_calls(a) == 25, "usage: 25 calls counted in memory before a clean restart")
    c.stop()
    c.start()
    with c.connect() as a:
        kept = written_calls(a) + live_calls(a)
        check(kept == base + 25, "usage: after a clean restart the 25 unwritten calls are kept (saved at shutdown, "
              "read back at start)", f"written before {base}, now written + live {kept}")
        a.execute("SELECT apikey.flush_usage()")
        check(live_calls(a) == 0 and written_calls(a) == base + 25, "usage: ... and written")

        # 4. kill -9 loses at most the counts since the last write.
        base = written_calls(a)
        for _ in range(40):
            verify(a, plain)
    c.crash()
    c.start()
    with c.connect() as a:
        kept = written_calls(a) + live_calls(a)
        check(kept == base, "usage: kill -9 lost exactly the 40 calls counted since the last write, nothing written",
              f"written before {base}, after {kept}")
        figure(f"usage: kill -9 after 40 unwritten verifies: {base + 40 - kept} calls lost, all of them since the last write")

        # 5. Retention: rows older than apikey.usage_retention go at the next write.
        a.execute("INSERT INTO apikey.usage_hours (key_id, hour, code, calls, cost) VALUES "
                  "(NULL, now() - interval '500 days', 'KEY_NOT_FOUND', 7, 0), "
                  "(NULL, now() - interval '300 days', 'KEY_NOT_FOUND', 5, 0)")
        verify(a, plain)
        a.execute("SELECT apikey.flush_usage()")
        old = a.execute("SELECT count(*) FILTER (WHERE hour < now() - interval '400 days'), "
                        "count(*) FILTER (WHERE hour < now() - interval '200 days') FROM apikey.usage_hours").fetchone()
        check(old == (0, 1), "usage: the write deleted the row older than 400 days (the default retention) and kept the 300-day one",
              f"{old}")

        # 6. The periodic round: a shorter interval, set by reload, writes on its own.
        a.execute("ALTER SYSTEM SET apikey.usage_flush_interval = 1")
        a.execute("SELECT pg_reload_conf()")
        verify(a, plain)
        wait_until(lambda: live_calls(a) == 0, "the writer writes within apikey.usage_flush_interval", 15)
        ok("usage: with apikey.usage_flush_interval = 1, the writer wrote the counts by itself")
        a.execute("ALTER SYSTEM SET apikey.usage_flush_interval = 3600")
        a.execute("SELECT pg_reload_conf()")
        time.sleep(1.5)

        # 7. DROP and CREATE EXTENSION again: the writer goes on.
        verify(a, plain)
        a.execute("DROP EXTENSION pg_apikey CASCADE")
        a.execute("CREATE EXTENSION pg_apikey")
        a.execute("SELECT apikey.create_organization('o')")
        new_id, new = create_key(a)
        verify(a, new)
        written = a.execute("SELECT apikey.flush_usage()").fetchone()[0]
        # (The old key's counter is written, or discarded if a round ran between DROP and
        # CREATE: "pg_apikey is not installed here" in the log.)
        # (Rounds also run when something else sets the writer's latch — a catch-up signal
        # after DROP EXTENSION's many invalidations — so flush_usage may find less to write.)
        check(written in (0, 1, 2) and usage_of(a, new_id) == {"VALID": (1, 1)} and live_calls(a) == 0
              and written_calls(a) in (1, 2),
              "usage: after DROP and CREATE EXTENSION the writer writes again", f"written {written}")

        # 8. A database dropped with counters: the writer discards them and goes on.
        a.execute("CREATE DATABASE usage_doomed")
        with c.connect("usage_doomed") as d:
            d.execute("CREATE EXTENSION pg_apikey")
            d.execute("SELECT apikey.create_organization('o')")
            _, doomed = create_key(d)
            verify(d, doomed)
        a.execute("DROP DATABASE usage_doomed")
        verify(a, new)
        a.execute("SELECT apikey.flush_usage()")
        check(usage_of(a, new_id) == {"VALID": (2, 2)} and live_calls(a) == 0,
              "usage: a dropped database's counters do not stop the writer")

        # 9. Without room: usage_max_entries = 100 and the writer held off by the readers'
        # lock; 150 new keys verified once each: 100 counters, the other 50 in OVERFLOW.
        a.execute("ALTER SYSTEM SET apikey.usage_max_entries = 100")
    c.stop()
    c.start()
    with c.connect() as a, c.connect() as holder:
        keys = [create_key(a) for _ in range(150)]
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (0x61706b79, 0x75736167))
        for _, k in keys:
            verify(a, k)
        live = a.execute("SELECT count(*) FILTER (WHERE code <> 'OVERFLOW'), "
                         "coalesce(sum(calls) FILTER (WHERE code = 'OVERFLOW'), 0) FROM apikey.usage_live()").fetchone()
        check(live == (100, 50), "usage: with usage_max_entries = 100, 100 counters and 50 calls in OVERFLOW, none lost",
              f"{live}")
        wait_until(lambda: a.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                     "'pg_apikey usage flush' AND wait_event_type = 'Lock'").fetchone()[0] == 1,
                   "a full table wakes the writer (its flush waits for the lock)", 10)
        ok("usage: the full table woke the writer at once (interval 3600 s)")
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", (0x61706b79, 0x75736167))
        time.sleep(0.2)
        a.execute("SELECT apikey.flush_usage()")
        over = a.execute("SELECT calls FROM apikey.usage_hours WHERE code = 'OVERFLOW'").fetchone()
        check(over == (50,) and live_calls(a) == 0, "usage: the OVERFLOW counter is written as a row of its own",
              f"{over}")
    c.stop()


def group_usage_standby():
    primary = preloaded("usage-primary")
    with primary.connect() as p:
        key_id, key = create_key(p)
        verify(p, key)
        p.execute("SELECT apikey.flush_usage()")
        base = written_calls(p)
    standby = Cluster("usage-standby", PORT + 1)
    standby.ctl("basebackup", primary.dir, primary.port, standby.dir)
    standby.start()
    with standby.connect() as s, primary.connect() as p:
        check(s.execute("SELECT pg_is_in_recovery()").fetchone()[0], "usage-standby: a hot standby, preloaded")
        for _ in range(30):
            verify(s, key)
        live = s.execute("SELECT code, calls FROM apikey.usage_live()").fetchall()
        check(live == [("VALID", 30)], "usage-standby: the standby counts its verifies in its own memory", f"{live}")
        total = usage_of(s, key_id)
        check(total == {"VALID": (31, 31)}, "usage-standby: key_usage there adds them to what the primary wrote",
              f"{total}")
        try:
            s.execute("SELECT apikey.flush_usage()")
            raise CheckFailed("usage-standby: flush_usage on a standby did not raise")
        except errors.ReadOnlySqlTransaction:
            ok("usage-standby: flush_usage on a standby raises 25006")
        writers = s.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_apikey usage%'").fetchone()[0]
        check(writers == 0, "usage-standby: no usage writer runs on the standby")
        time.sleep(1)
        check(written_calls(p) == base and usage_of(p, key_id) == {"VALID": (1, 1)},
              "usage-standby: nothing the standby counted reaches the primary's table")


GROUPS = {
    "crash-usage": group_crash_usage,
    "crash-create": group_crash_create,
    "standby": group_standby,
    "fuzz-keys": group_fuzz_keys,
    "fuzz-json": group_fuzz_json,
    "maintenance": group_maintenance,
    "open-txn": group_open_txn,
    "setters": group_setters,
    "usage": group_usage,
    "usage-standby": group_usage_standby,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in GROUPS:
        sys.exit(f"usage: faults.py {{{','.join(GROUPS)}}}")
    try:
        become_subreaper()
        GROUPS[sys.argv[1]]()
    except CheckFailed as e:
        message = " ".join(str(e).split())      # one line
        message = message if message.startswith(sys.argv[1]) else f"{sys.argv[1]}: {message}"
        print(f"fault check FAILED: {message}", flush=True)
        sys.exit(1)
    except (psycopg.Error, subprocess.CalledProcessError, OSError) as e:
        detail = " ".join(f"{getattr(e, 'sqlstate', None) or type(e).__name__}: {e}".split())
        print(f"fault check FAILED: {sys.argv[1]}: unexpected error: {short(detail, 500)}", flush=True)
        sys.exit(1)
