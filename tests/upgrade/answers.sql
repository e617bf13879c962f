-- What the stored keys answer, without spending anything: every verify runs in a
-- transaction that is rolled back. The output must be the same before and after an
-- upgrade (ALTER EXTENSION UPDATE, or pg_upgrade to a newer major). retry_after counts
-- down with the clock, so only whether it is set is compared.
\pset footer off
\pset null '(null)'
BEGIN;
SELECT k.label, v.valid, v.code, v.key_id = k.key_id AS same_id, v.org_id, v.user_id, v.name,
       v.permissions, v.metadata, v.remaining, v.expires_at, v.retry_after IS NOT NULL AS retry_after_set
  FROM public.upgrade_keys k, LATERAL apikey.verify_api_key(k.key) v
 ORDER BY k.label;
SELECT k.label, v.code
  FROM public.upgrade_keys k,
       LATERAL apikey.verify_api_key(k.key, '{"files": ["write"]}') v
 WHERE k.label IN ('org_plain', 'user_plain')
 ORDER BY k.label;
SELECT v.code, v.key_id FROM apikey.verify_api_key('dp_live_not-a-key') v;
ROLLBACK;
