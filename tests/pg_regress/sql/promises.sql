-- Promises of docs/sql-reference.md that no other file checks: the errors table's rows
-- for an expired key's rotation and a malformed stored owner list; update_api_key's rules
-- (a new refill_interval restarts the period, an identical rate_limits list keeps its
-- windows, pairs are checked on the resulting settings); list_audit_events(since); an
-- owner's limits after a due refill. Time is moved by writing the tables as superuser.
SELECT id FROM apikey.create_organization('promise_org');

-- Rotating an expired key: 55000.
SELECT key_id AS expiring FROM apikey.create_api_key(org_id => 'promise_org', name => 'expiring',
                                                     expires_at => now() + interval '1 hour') \gset
UPDATE apikey.keys SET expires_at = now() - interval '1 minute' WHERE id = :'expiring';
SELECT key FROM apikey.rotate_api_key(:'expiring');
\echo :LAST_ERROR_SQLSTATE

-- update_api_key: setting refill_interval restarts the refill period (the refill is
-- counted from the update), and setting anything else does not.
SELECT key_id AS refilled, key AS refilled_key
  FROM apikey.create_api_key(org_id => 'promise_org', name => 'refilled', remaining => 10,
                             refill_amount => 10, refill_interval => '1 day') \gset
UPDATE apikey.keys SET last_refill_at = now() - interval '20 hours' WHERE id = :'refilled';
SELECT name FROM apikey.update_api_key(:'refilled', name => 'refilled, renamed');
SELECT last_refill_at < now() - interval '19 hours' AS period_kept_by_a_rename
  FROM apikey.keys WHERE id = :'refilled';
SELECT refill_interval FROM apikey.update_api_key(:'refilled', refill_interval => '1 day');
SELECT last_refill_at > now() - interval '1 minute' AS period_restarted
  FROM apikey.keys WHERE id = :'refilled';

-- Pairs are checked on the resulting settings: refill_amount alone is fine on a key that
-- already has a refill_interval, and 22023 on a key that has none.
SELECT refill_amount, refill_interval FROM apikey.update_api_key(:'refilled', refill_amount => 50);
SELECT key_id AS no_refill FROM apikey.create_api_key(org_id => 'promise_org', remaining => 10) \gset
SELECT refill_amount FROM apikey.update_api_key(:'no_refill', refill_amount => 50);
\echo :LAST_ERROR_SQLSTATE
-- Clearing one of a pair leaves it incomplete: 22023 too.
SELECT refill_amount FROM apikey.update_api_key(:'refilled', clear => '{refill_interval}');
\echo :LAST_ERROR_SQLSTATE

-- An identical rate_limits list keeps its windows (the calls counted so far); a changed
-- list starts them over.
SELECT key_id AS windowed, key AS windowed_key
  FROM apikey.create_api_key(org_id => 'promise_org', name => 'windowed',
       rate_limits => '[{"name": "minute", "limit": 5, "window": "1 hour"}]') \gset
SELECT code FROM apikey.verify_api_key(:'windowed_key');
SELECT code FROM apikey.verify_api_key(:'windowed_key');
SELECT name FROM apikey.update_api_key(:'windowed',
       rate_limits => '[{"name": "minute", "limit": 5, "window": "1 hour"}]');
SELECT code, rate_limits -> 0 ->> 'remaining' AS remaining_in_window
  FROM apikey.verify_api_key(:'windowed_key');
SELECT name FROM apikey.update_api_key(:'windowed',
       rate_limits => '[{"name": "minute", "limit": 6, "window": "1 hour"}]');
SELECT code, rate_limits -> 0 ->> 'remaining' AS remaining_in_new_window
  FROM apikey.verify_api_key(:'windowed_key');

-- list_audit_events(since => …): only what happened from then on.
SELECT clock_timestamp() AS mark \gset
SELECT name FROM apikey.update_api_key(:'windowed', name => 'after the mark');
SELECT action, details -> 'changes' ->> 'name' AS name
  FROM apikey.list_audit_events(org_id => 'promise_org', since => :'mark') ORDER BY id;
SELECT count(*) > 5 AS more_before_the_mark FROM apikey.list_audit_events(org_id => 'promise_org');

-- An owner's limits after a due refill: get_owner_limits shows the refilled quota, and the
-- next refill one interval after now (the next call refills; the period starts then).
SELECT key AS shared_key FROM apikey.create_api_key(org_id => 'promise_org', name => 'shared') \gset
SELECT apikey.set_owner_limits(org_id => 'promise_org', remaining => 2, refill_amount => 3,
                               refill_interval => '1 hour');
SELECT code FROM apikey.verify_api_key(:'shared_key', cost => 2);
SELECT code FROM apikey.verify_api_key(:'shared_key');
SELECT remaining, next_refill_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes' AS next_in_an_hour
  FROM apikey.get_owner_limits(org_id => 'promise_org');
UPDATE apikey.owner_limits SET last_refill_at = coalesce(last_refill_at, set_at) - interval '2 hours'
 WHERE owner_kind = 'org' AND owner_id = 'promise_org';
SELECT remaining, next_refill_at BETWEEN now() + interval '59 minutes' AND clock_timestamp() + interval '61 minutes' AS next_in_an_hour_from_now
  FROM apikey.get_owner_limits(org_id => 'promise_org');
SELECT code, remaining FROM apikey.verify_api_key(:'shared_key');

-- A stored owner rate_limits list written around the functions and malformed: verify will
-- not guess (55000), and neither will get_owner_limits.
UPDATE apikey.owner_limits SET rate_limits = '[{"name": "minute", "limit": "many", "window": "1 minute"}]'
 WHERE owner_kind = 'org' AND owner_id = 'promise_org';
SELECT code FROM apikey.verify_api_key(:'shared_key');
\echo :LAST_ERROR_SQLSTATE
SELECT remaining FROM apikey.get_owner_limits(org_id => 'promise_org');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_owner_limits(org_id => 'promise_org');
SELECT code FROM apikey.verify_api_key(:'shared_key');

-- A call that no wait would admit has no retry_after: its cost is above a cost window's
-- limit, or above what the quota refills to. One that a wait admits has one.
SELECT key AS costly FROM apikey.create_api_key(org_id => 'promise_org', name => 'costly',
       remaining => 5, refill_amount => 5, refill_interval => '1 hour',
       rate_limits => '[{"name": "credits", "limit": 10, "window": "1 minute", "unit": "cost"}]') \gset
SELECT code, retry_after IS NULL AS no_retry FROM apikey.verify_api_key(:'costly', cost => 11);
SELECT code, retry_after IS NULL AS no_retry FROM apikey.verify_api_key(:'costly', cost => 6);
SELECT code FROM apikey.verify_api_key(:'costly', cost => 5);
SELECT code, retry_after > interval '59 minutes' AS retry_at_the_refill FROM apikey.verify_api_key(:'costly', cost => 1);

-- Windows and refill intervals are at most 100 years (now plus them must stay a timestamp).
SELECT key FROM apikey.create_api_key(org_id => 'promise_org',
       rate_limits => '[{"name": "forever", "limit": 1, "window": "100000000 years"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT key FROM apikey.create_api_key(org_id => 'promise_org', remaining => 1,
       refill_amount => 1, refill_interval => '101 years');
\echo :LAST_ERROR_SQLSTATE
SELECT key FROM apikey.create_api_key(org_id => 'promise_org', rate_limit_max => 1,
       rate_limit_window => '1000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT refill_interval FROM apikey.create_api_key(org_id => 'promise_org', remaining => 1,
       refill_amount => 1, refill_interval => '100 years');
SELECT apikey.set_owner_limits(org_id => 'promise_org', remaining => 1, refill_amount => 1,
                               refill_interval => '200 years');
\echo :LAST_ERROR_SQLSTATE
