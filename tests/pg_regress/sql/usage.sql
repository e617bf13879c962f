-- Usage analytics (docs/usage-analytics.md): verify counts calls and cost per key, hour
-- and code in shared memory; a background worker writes the counts into hourly rows.
-- Run on a cluster of its own that preloads pg_apikey (scripts/test.sh, after `setup`);
-- apikey.usage_analytics is on by default there. Sums, not hours, are printed: a run
-- may cross an hour.
SHOW apikey.usage_analytics;
SHOW apikey.usage_max_entries;

SELECT key AS ua, key_id AS uaid FROM apikey.create_api_key(org_id => 'acme', name => 'usage-a', remaining => 5) \gset
SELECT key AS ub, key_id AS ubid FROM apikey.create_api_key(org_id => 'acme', name => 'usage-b',
    permissions => '{"files": ["read"]}') \gset

-- usage-a: two calls of cost 2 admitted, the third refused (1 left); usage-b: three
-- VALID, one INSUFFICIENT_PERMISSIONS, one of cost 0; two calls with a made-up key.
SELECT code, remaining FROM apikey.verify_api_key(:'ua', cost => 2);
SELECT code, remaining FROM apikey.verify_api_key(:'ua', cost => 2);
SELECT code, remaining FROM apikey.verify_api_key(:'ua', cost => 2);
SELECT code FROM apikey.verify_api_key(:'ub', '{"files": ["read"]}');
SELECT code FROM apikey.verify_api_key(:'ub');
SELECT code FROM apikey.verify_api_key(:'ub');
SELECT code FROM apikey.verify_api_key(:'ub', '{"files": ["write"]}');
SELECT code FROM apikey.verify_api_key(:'ub', cost => 0);
SELECT code FROM apikey.verify_api_key('ak_not_a_key_at_all');
SELECT code FROM apikey.verify_api_key(NULL);

-- Counted by code; cost is what admitted calls spent (a refusal spends nothing). Before
-- the worker writes them, key_usage reads them from memory.
SELECT bucket_start = date_trunc('day', now()) AS today, code, calls, cost
  FROM apikey.key_usage(:'uaid') ORDER BY code;
SELECT code, sum(calls) AS calls, sum(cost) AS cost FROM apikey.key_usage(:'ubid') GROUP BY code ORDER BY code;

-- What this server counted and has not written (trusted callers): unknown keys under
-- key_id NULL.
SELECT k.name, l.code, l.calls, l.cost
  FROM apikey.usage_live() AS l LEFT JOIN apikey.list_api_keys(org_id => 'acme') AS k USING (key_id)
 ORDER BY k.name NULLS FIRST, l.code;

-- flush_usage writes them now (the worker would within apikey.usage_flush_interval).
SELECT apikey.flush_usage() >= 0 AS written;
SELECT count(*) AS still_in_memory FROM apikey.usage_live();
SELECT k.name, h.code, h.calls, h.cost
  FROM apikey.usage_hours AS h LEFT JOIN apikey.list_api_keys(org_id => 'acme') AS k USING (key_id)
 ORDER BY k.name NULLS FIRST, h.code;

-- The same answers from the written rows.
SELECT code, sum(calls) AS calls, sum(cost) AS cost FROM apikey.key_usage(:'uaid') GROUP BY code ORDER BY code;

-- owner_usage: an organization's keys, by key and code; the buckets sum the same.
SELECT k.name, u.code, sum(u.calls) AS calls, sum(u.cost) AS cost
  FROM apikey.owner_usage(org_id => 'acme') AS u JOIN apikey.list_api_keys(org_id => 'acme') AS k USING (key_id)
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT b.bucket, sum(u.calls) AS calls, sum(u.cost) AS cost,
       bool_and(u.bucket_start = date_trunc(b.bucket, u.bucket_start)) AS starts_of_buckets
  FROM (VALUES ('hour'), ('day'), ('month')) AS b (bucket),
       LATERAL apikey.owner_usage(org_id => 'acme', bucket => b.bucket) AS u
 GROUP BY b.bucket ORDER BY b.bucket;
-- The range: hours from since's hour until before until.
SELECT count(*) AS rows_in_the_future
  FROM apikey.owner_usage(org_id => 'acme', since => now() + interval '2 hours', until => now() + interval '3 hours');

-- Who may read: whoever may read the key (key_usage), members whose role allows read
-- (owner_usage); a member without read and a stranger get P0002, as for the keys.
SET ROLE regress_admin;
SELECT sum(calls) AS calls FROM apikey.key_usage(:'uaid');
SELECT sum(calls) AS calls FROM apikey.owner_usage(org_id => 'acme');
RESET ROLE;
SET ROLE regress_member;
SELECT * FROM apikey.key_usage(:'uaid');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.owner_usage(org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_stranger;
SELECT * FROM apikey.key_usage(:'uaid');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.owner_usage(org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.usage_live();
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.flush_usage();
\echo :LAST_ERROR_SQLSTATE
-- A user's own keys: the user itself may read them.
SELECT key AS us, key_id AS usid FROM apikey.create_api_key(name => 'mine') \gset
SELECT code FROM apikey.verify_api_key(:'us');
SELECT code, calls, cost FROM apikey.owner_usage(user_id => 'regress_stranger');
SELECT * FROM apikey.owner_usage(user_id => 'regress_owner');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Bad arguments: 22023.
SELECT * FROM apikey.key_usage(:'uaid', bucket => 'week');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.key_usage(:'uaid', since => now(), until => now() - interval '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.key_usage(:'uaid', since => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.key_usage(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.owner_usage();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.owner_usage(org_id => 'acme', user_id => 'regress_owner');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.owner_usage(org_id => 'no-such-org');
\echo :LAST_ERROR_SQLSTATE

-- Turned off, nothing is counted.
SELECT apikey.flush_usage() >= 0 AS written;
SET apikey.usage_analytics = off;
SELECT code FROM apikey.verify_api_key(:'ub');
SELECT count(*) AS counted FROM apikey.usage_live();
RESET apikey.usage_analytics;
