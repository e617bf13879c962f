#!/usr/bin/env python3
"""Turn bench/run.sh's results.tsv into BENCHMARKS.md: medians with min/max, ratios to
the baselines measured in the same run, and the project's targets, met or not."""
import argparse
import csv
import datetime
import statistics
from collections import defaultdict

p = argparse.ArgumentParser()
p.add_argument("results")
p.add_argument("--machine", required=True)
p.add_argument("--postgres", required=True)
p.add_argument("--settings", required=True)
p.add_argument("--runs", required=True)
p.add_argument("--seconds", required=True)
p.add_argument("--big", required=True)
a = p.parse_args()

values = defaultdict(list)
units = {}
with open(a.results) as f:
    for row in csv.DictReader(f, delimiter="\t"):
        key = (row["phase"], row["workload"], int(row["clients"]))
        values[key].append(float(row["value"]))
        units[key] = row["unit"]


def med(phase, workload, clients):
    return statistics.median(values[(phase, workload, clients)])


def cell(phase, workload, clients):
    v = values[(phase, workload, clients)]
    return f"{statistics.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f})"


def ratio(x, y):
    return f"{x / y:.2f}×"


out = []
w = out.append
w("# pg_apikey benchmarks\n")
w("Written by `./bench/run.sh` (do not edit by hand). Every figure is the median of "
  f"{a.runs} interleaved runs (min–max in brackets); every ratio compares medians "
  "measured in the same run, because the machines are shared and noisy.\n")
w(f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
w(f"- Machine: {a.machine}")
w(f"- PostgreSQL: {a.postgres}; settings: {a.settings}")
w(f"- pgbench: prepared protocol (`-M prepared`), unix socket, {a.seconds} s per run, "
  "`-j` = min(clients, 2); each client verifies its own key (`CASE :client_id …`, the same "
  "expression in every workload and baseline). Extension built in release mode.")
w("- Baselines: **SELECT 1** (round-trip ceiling), **floor** (prepared SELECT of the "
  "same columns from `apikey.keys` by `sha256(convert_to($1, 'UTF8'))`), **DIY** "
  "(`bench/diy.sql`: a PL/pgSQL verify over an ordinary table with the same checks).\n")

w("## Throughput, 10,000 keys per table (transactions per second)\n")
w("| workload | clients | pg_apikey tps | vs SELECT 1 | vs floor | DIY tps | pg_apikey / DIY |")
w("| --- | --- | --- | --- | --- | --- | --- |")
rows = [
    ("plain key", "verify_plain", "diy_plain", 1),
    ("plain key", "verify_plain", "diy_plain", 8),
    ("quota key, distinct keys", "verify_quota", "diy_quota", 8),
    ("quota key, one hot key", "verify_hot", "diy_hot", 8),
    ("quota key, one hot key, `usage_synchronous_commit = off`", "verify_hot_async", "diy_hot", 8),
    ("rate-limited key, distinct keys", "verify_rate", "diy_rate", 8),
    ("garbage key (bad checksum)", "verify_garbage", "diy_garbage", 8),
]
for label, ours, diy, c in rows:
    m = med("small", ours, c)
    w(f"| {label} | {c} | {cell('small', ours, c)} | {ratio(m, med('small', 'select1', c))} "
      f"| {ratio(m, med('small', 'floor', c))} | {cell('small', diy, c)} | {ratio(m, med('small', diy, c))} |")
for c in (1, 8):
    w(f"| *SELECT 1* | {c} | {cell('small', 'select1', c)} | 1.00× | "
      f"{ratio(med('small', 'select1', c), med('small', 'floor', c))} | | |")
    w(f"| *floor query* | {c} | {cell('small', 'floor', c)} | "
      f"{ratio(med('small', 'floor', c), med('small', 'select1', c))} | 1.00× | | |")
w(f"| *floor query, garbage keys* | 8 | {cell('small', 'floor_garbage', 8)} | "
  f"{ratio(med('small', 'floor_garbage', 8), med('small', 'select1', 8))} | | | |")
for label, wl in (("plain key, `required_permissions` object", "verify_req_object"),
                  ("plain key, two-level `$any`/`$all` query", "verify_req_query"),
                  ("metered key: quota, 2 named rate limits, `cost => 3`, distinct keys", "verify_metered"),
                  ("the same, in an organization with owner limits (8 keys, one plan)", "verify_metered_owner"),
                  ("the same, `usage_synchronous_commit = off`", "verify_metered_owner_async"),
                  ("garbage key while imported keys are in use (one probe by digest)", "verify_garbage_imported"),
                  ("*floor query, garbage keys*, same runs", "floor_garbage_imported"),
                  ("*SELECT 1*, same runs", "select1_imported")):
    m = med("small", wl, 8)
    w(f"| {label} | 8 | {cell('small', wl, 8)} | {ratio(m, med('small', 'select1', 8))} "
      f"| {ratio(m, med('small', 'floor', 8))} | | |")

w("\n## Usage analytics (pg_apikey in shared_preload_libraries)\n")
w("The same workloads with `apikey.usage_analytics = on` (counters in shared memory) and "
  "`off`, interleaved in the same runs; and the background writer's write of 10,000 "
  "counters (10,000 distinct keys verified once each, then `flush_usage()`: the round's "
  "time and the WAL it wrote, one `INSERT … ON CONFLICT` for the batch).\n")
w("| workload | analytics off (tps) | analytics on (tps) | on / off |")
w("| --- | --- | --- | --- |")
for label, off, on in (("plain key, 8 clients", "verify_plain", "verify_plain_usage"),
                       ("metered key (quota, 2 named limits, cost 3), 8 clients", "verify_metered", "verify_metered_usage")):
    w(f"| {label} | {cell('small', off, 8)} | {cell('small', on, 8)} | "
      f"{ratio(med('small', on, 8), med('small', off, 8))} |")
shm = med("usage", "usage_shmem", 1)
entries = med("usage", "usage_max_entries", 1)
w("")
w("| the writer's flush of 10,000 counters | value |")
w("| --- | --- |")
w(f"| time (ms) | {cell('usage', 'usage_flush_10000', 1)} |")
w(f"| WAL (bytes) | {cell('usage', 'usage_flush_10000@wal', 1)} |")
w(f"| WAL per counter (bytes) | {med('usage', 'usage_flush_10000@wal', 1) / 10000:,.0f} |")
w(f"| shared memory for `usage_max_entries = {entries:,.0f}` (pg_shmem_allocations) | {shm:,.0f} bytes ({shm / entries:,.0f} per entry: 64-byte slots, twice as many as entries, rounded up to a power of two; the default 10,000 takes 2 MiB) |")

w("\n## WAL written per transaction (bytes, 8 clients)\n")
w("`pg_current_wal_insert_lsn()` before and after each run, over the transactions pgbench "
  "completed (every verify in these workloads is admitted). Reads write none.\n")
w("| workload | pg_apikey | DIY |")
w("| --- | --- | --- |")
for label, ours, diy in (("quota key, distinct keys", "verify_quota", "diy_quota"),
                         ("quota key, one hot key", "verify_hot", "diy_hot"),
                         ("rate-limited key, distinct keys", "verify_rate", "diy_rate"),
                         ("metered key (quota, 2 named limits, cost 3)", "verify_metered", None),
                         ("the same, sharing owner limits", "verify_metered_owner", None),
                         ("plain key", "verify_plain", "diy_plain")):
    d = f"{med('small', diy + '@wal', 8):,.0f}" if diy else ""
    w(f"| {label} | {med('small', ours + '@wal', 8):,.0f} | {d} |")

w("\n## In process: 100,000 verifies in one statement (ns per verify)\n")
w("| keys in table | verify | floor query, same loop | verify / floor |")
w("| --- | --- | --- | --- |")
for phase, n in (("small", "10,000"), ("big", f"{int(a.big):,}")):
    w(f"| {n} | {cell(phase, 'inproc_verify', 1)} | {cell(phase, 'inproc_floor', 1)} | "
      f"{ratio(med(phase, 'inproc_verify', 1), med(phase, 'inproc_floor', 1))} |")

w(f"\n## Table size: 10,000 vs {int(a.big):,} keys, 8 clients (tps)\n")
w("| workload | 10,000 keys | %s keys | big / small | big / small, each relative to SELECT 1 of its phase |" % f"{int(a.big):,}")
w("| --- | --- | --- | --- | --- |")
for wl in ("verify_plain", "floor", "diy_plain", "select1"):
    s, b = med("small", wl, 8), med("big", wl, 8)
    norm = (b / med("big", "select1", 8)) / (s / med("small", "select1", 8))
    w(f"| {wl} | {cell('small', wl, 8)} | {cell('big', wl, 8)} | {ratio(b, s)} | {norm:.2f}× |")

w("\n## Bulk provisioning: 100,000 keys in one statement (keys per second)\n")
w("| | keys/s | pg_apikey / DIY |")
w("| --- | --- | --- |")
w(f"| pg_apikey `create_api_key` | {cell('bulk', 'bulk_pg_apikey', 1)} | "
  f"{ratio(med('bulk', 'bulk_pg_apikey', 1), med('bulk', 'bulk_diy', 1))} |")
w(f"| DIY `diy.create_key` | {cell('bulk', 'bulk_diy', 1)} | |")

w("\n## Targets\n")
w("| target | measured | met |")
w("| --- | --- | --- |")


def target(label, value, ok, fmt="{:.3f}×"):
    """A row of the targets table; `ok` None: measured, with no target ("—")."""
    met = "—" if ok is None else ("yes" if ok else "**no**")
    w(f"| {label} | {fmt.format(value)} | {met} |")


r = med("small", "verify_plain", 8) / med("small", "floor", 8)
target("plain verify, 8 clients ≥ 0.9 × floor query", r, r >= 0.9)
r = med("small", "verify_plain", 8) / med("small", "select1", 8)
target("plain verify, 8 clients ≥ 0.7 × SELECT 1", r, r >= 0.7)
r = med("small", "inproc_verify", 1) / med("small", "inproc_floor", 1)
target("in process ≤ 1.5 × floor query's time", r, r <= 1.5)
for label, ours, diy, c in rows:
    r = med("small", ours, c) / med("small", diy, c)
    target(f"{label}, {c} client(s) ≥ 1.5 × DIY", r, r >= 1.5)
r = med("bulk", "bulk_pg_apikey", 1) / med("bulk", "bulk_diy", 1)
target("bulk provisioning ≥ 1.5 × DIY", r, r >= 1.5)
r = med("small", "verify_garbage", 8) / med("small", "select1", 8)
target("garbage keys ≥ 1.0 × SELECT 1", r, r >= 1.0)
r = med("small", "verify_garbage", 8) / med("small", "floor", 8)
target("garbage keys cheaper than the floor query (tps ratio > 1)", r, r > 1.0)
s, b = med("small", "verify_plain", 8), med("big", "verify_plain", 8)
norm = (b / med("big", "select1", 8)) / (s / med("small", "select1", 8))
target(f"{int(a.big):,} keys within 20 % of 10,000 keys (SELECT 1-normalised)", norm, abs(norm - 1) <= 0.2)
r = med("small", "verify_quota", 8) / med("small", "verify_plain", 8)
target("quota verifies on distinct keys ≥ 0.5 × plain verify", r, r >= 0.5)
r = med("small", "verify_req_query", 8) / med("small", "verify_req_object", 8)
target("two-level `$any`/`$all` query ≥ 0.9 × the object shape (plain key, 8 clients)", r, r >= 0.9)
r = med("small", "verify_metered", 8) / med("small", "verify_quota", 8)
target("quota + 2 named rate limits + `cost => 3` ≥ 0.8 × a key with one quota (8 clients, distinct keys)", r, r >= 0.8)
r = med("small", "verify_metered_owner", 8) / med("small", "verify_metered", 8)
target("8 keys sharing an organization's quota and rate limit ≥ 0.8 × the same keys without owner limits", r, r >= 0.8)
r = med("small", "verify_hot", 8) / med("small", "verify_quota", 8)
target("one hot key with a quota ≥ 0.8 × distinct quota keys (8 clients)", r, r >= 0.8)
r = med("small", "verify_quota", 8) / med("small", "diy_quota", 8)
target("quota keys on distinct keys ≥ 1.0 × DIY (8 clients)", r, r >= 1.0)
r = med("small", "verify_hot@wal", 8) / med("small", "verify_quota@wal", 8)
target("WAL bytes per admitted verify, one hot key (budget slots) vs distinct quota keys", r, r <= 1.2)
r = med("small", "verify_metered_owner_async", 8) / med("small", "verify_metered_owner", 8)
target("owner limits with `usage_synchronous_commit = off` vs the same with the default (`on`)", r, None)
r = med("small", "verify_plain_usage", 8) / med("small", "verify_plain", 8)
target("plain verify, 8 clients, usage analytics on ≥ 0.95 × off", r, r >= 0.95)
r = med("small", "verify_metered_usage", 8) / med("small", "verify_metered", 8)
target("metered verify, 8 clients, usage analytics on vs off (unchanged within noise)", r, None)
r = med("small", "verify_garbage_imported", 8) / med("small", "floor_garbage_imported", 8)
target("garbage key with imported keys in use vs floor query on garbage keys, same runs", r, None)
r = med("small", "verify_garbage_imported", 8) / med("small", "select1_imported", 8)
target("garbage key with imported keys in use vs SELECT 1, same runs", r, None)
import os
analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
if os.path.exists(analysis):
    w("")
    w(open(analysis).read().rstrip())
print("\n".join(out))
