-- Quotas, refill and rate limits, as verify reports them. (Exact timing, refill and
-- concurrency are pinned by the #[pg_test]s and the integration tests.)

-- A quota: each VALID verify spends one use; it never goes below zero.
SELECT key AS q, key_id AS qid FROM apikey.create_api_key(org_id => 'acme', name => 'quota', remaining => 2) \gset
SELECT valid, code, remaining FROM apikey.verify_api_key(:'q');
SELECT valid, code, remaining FROM apikey.verify_api_key(:'q');
SELECT valid, code, remaining, retry_after FROM apikey.verify_api_key(:'q');
SELECT valid, code, remaining FROM apikey.verify_api_key(:'q');
SELECT remaining FROM apikey.get_api_key(:'qid');

-- A refill: once the interval has passed since the last refill (or creation), the next
-- verify resets remaining to refill_amount before the usage check.
SELECT key AS r, key_id AS rid FROM apikey.create_api_key(org_id => 'acme', name => 'refill',
    remaining => 1, refill_amount => 3, refill_interval => '1 day') \gset
SELECT code, remaining FROM apikey.verify_api_key(:'r');
SELECT code, remaining, retry_after > interval '23 hours' AS retry_about_a_day FROM apikey.verify_api_key(:'r');
UPDATE apikey.keys SET created_at = created_at - interval '1 day' WHERE id = :'rid';   -- a day passes
SELECT code, remaining FROM apikey.verify_api_key(:'r');
SELECT code, remaining FROM apikey.verify_api_key(:'r');

-- A rate limit: a fixed window that starts with the first request after the last one ended.
SELECT key AS rl, key_id AS rlid FROM apikey.create_api_key(org_id => 'acme', name => 'rate',
    rate_limit_max => 2, rate_limit_window => '1 hour') \gset
SELECT code FROM apikey.verify_api_key(:'rl');
SELECT code FROM apikey.verify_api_key(:'rl');
SELECT code, retry_after > interval '59 minutes' AND retry_after <= interval '1 hour' AS retry_within_the_hour
  FROM apikey.verify_api_key(:'rl');
SELECT rate_limit_max, rate_limit_window FROM apikey.get_api_key(:'rlid');

-- Check order: permissions before rate limit before usage; refusals spend nothing.
SELECT key AS o, key_id AS oid FROM apikey.create_api_key(org_id => 'acme', name => 'order',
    permissions => '{"files": ["read"]}', remaining => 1, rate_limit_max => 1, rate_limit_window => '1 hour') \gset
SELECT code, remaining FROM apikey.verify_api_key(:'o', '{"files": ["write"]}');
SELECT code, remaining FROM apikey.verify_api_key(:'o', '{"files": ["read"]}');
SELECT code, remaining FROM apikey.verify_api_key(:'o');

-- Bad policy values.
SELECT apikey.create_api_key(org_id => 'acme', remaining => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', refill_amount => 5);
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', refill_amount => 5, refill_interval => '0');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limit_window => '1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limit_max => -3, rate_limit_window => '1 minute');
\echo :LAST_ERROR_SQLSTATE
