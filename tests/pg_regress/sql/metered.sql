-- Metered APIs (0.2.0): cost per call, several named rate limits per key, limits shared by
-- an owner's keys, and what verify reports for X-RateLimit-* headers. Exact concurrency,
-- pinned-clock windows and steady traffic are in the #[pg_test]s and integration tests.
-- Times differ from run to run: they are shown as comparisons.

-- ---------------------------------------------------------------- cost per call

-- cost is spent from the quota; a quota with less left than cost refuses and spends nothing.
SELECT key AS c, key_id AS cid FROM apikey.create_api_key(org_id => 'acme', name => 'cost', remaining => 10) \gset
SELECT code, remaining FROM apikey.verify_api_key(:'c', cost => 3);
SELECT code, remaining FROM apikey.verify_api_key(:'c', NULL, 4);
SELECT code, remaining FROM apikey.verify_api_key(:'c', cost => 4);
SELECT code, remaining FROM apikey.verify_api_key(:'c', cost => 3);
SELECT code, remaining FROM apikey.verify_api_key(:'c', cost => 1);
-- cost 0 checks every rule and spends nothing, even from an empty quota.
SELECT code, remaining FROM apikey.verify_api_key(:'c', cost => 0);
SELECT remaining FROM apikey.get_api_key(:'cid');
-- The default cost is 1; a key without limits ignores cost.
SELECT key AS plain FROM apikey.create_api_key(org_id => 'acme', name => 'plain') \gset
SELECT code, remaining, rate_limits FROM apikey.verify_api_key(:'plain', cost => 1000);
-- A negative or NULL cost is the application's bug: 22023, for any key.
SELECT code FROM apikey.verify_api_key(:'c', cost => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key('garbage', cost => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key(:'c', cost => NULL);
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------- named rate limits

SELECT key AS n, key_id AS nid FROM apikey.create_api_key(org_id => 'acme', name => 'named',
    remaining => 100,
    rate_limits => '[{"name": "burst", "limit": 2, "window": "1 hour"},
                     {"name": "tokens", "limit": 10, "window": "1 day", "unit": "cost"}]') \gset
-- key_info keeps the list exactly as given.
SELECT rate_limits, rate_limit_max FROM apikey.get_api_key(:'nid');
-- Each call counts 1 in burst and its cost in tokens; rate_limits reports both, key first.
SELECT code, remaining,
       jsonb_path_query_array(rate_limits, '$[*].name') AS names,
       jsonb_path_query_array(rate_limits, '$[*].scope') AS scopes,
       jsonb_path_query_array(rate_limits, '$[*].limit') AS limits,
       jsonb_path_query_array(rate_limits, '$[*].remaining') AS left
  FROM apikey.verify_api_key(:'n', cost => 4);
SELECT code, jsonb_path_query_array(rate_limits, '$[*].remaining') AS left,
       (rate_limits -> 0 ->> 'reset_at')::timestamptz BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes' AS burst_resets_within_the_hour,
       (rate_limits -> 1 ->> 'reset_at')::timestamptz > now() + interval '23 hours' AS tokens_reset_in_a_day
  FROM apikey.verify_api_key(:'n', cost => 4);
-- burst is full: refused, and nothing is counted anywhere or spent.
SELECT code, remaining, retry_after > interval '59 minutes' AS retry_after_burst_window,
       jsonb_path_query_array(rate_limits, '$[*].remaining') AS left
  FROM apikey.verify_api_key(:'n', cost => 1);
-- A call that would take tokens past its limit is refused even though burst would admit it.
UPDATE apikey.keys SET rate_resets[1] = now() - interval '1 second' WHERE id = :'nid';   -- burst's window ends
SELECT code, remaining, retry_after > interval '23 hours' AS retry_after_tokens_window,
       jsonb_path_query_array(rate_limits, '$[*].remaining') AS left
  FROM apikey.verify_api_key(:'n', cost => 3);
SELECT code, remaining, jsonb_path_query_array(rate_limits, '$[*].remaining') AS left
  FROM apikey.verify_api_key(:'n', cost => 2);
-- update replaces the whole list (the windows start over); clear removes it.
SELECT rate_limits FROM apikey.update_api_key(:'nid',
    rate_limits => '[{"name": "minute", "limit": 1, "window": "1 minute"}]');
SELECT code, jsonb_path_query_array(rate_limits, '$[*].name') AS names FROM apikey.verify_api_key(:'n');
SELECT code, retry_after > interval '0' AS must_wait FROM apikey.verify_api_key(:'n');
SELECT rate_limits FROM apikey.update_api_key(:'nid', clear => '{rate_limits}');
SELECT code, rate_limits FROM apikey.verify_api_key(:'n');
-- The rate_limit_max/rate_limit_window pair is the limit named default (unit requests).
SELECT key AS d, key_id AS did FROM apikey.create_api_key(org_id => 'acme', name => 'default pair',
    rate_limit_max => 3, rate_limit_window => '1 hour',
    rate_limits => '[{"name": "daily", "limit": 100, "window": "1 day"}]') \gset
SELECT code, jsonb_path_query_array(rate_limits, '$[*].name') AS names,
       jsonb_path_query_array(rate_limits, '$[*].remaining') AS left
  FROM apikey.verify_api_key(:'d');
-- A limit named default, given without the pair, is an ordinary element of the list.
SELECT rate_limits, rate_limit_max FROM apikey.create_api_key(org_id => 'acme', name => 'default in list',
    rate_limits => '[{"name": "default", "limit": 5, "window": "1 minute"}]');
-- rotate keeps the list; create and rotate return it.
SELECT rate_limits FROM apikey.rotate_api_key(:'did');

-- Every malformed list is 22023 naming the element at fault, and nothing is written.
SELECT count(*) AS keys_before FROM apikey.keys \gset
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '{"name": "burst"}');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[1]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"limit": 1, "window": "1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "", "limit": 1, "window": "1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "per second", "limit": 1, "window": "1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 1, "window": "1 minute"}, {"name": "a", "limit": 2, "window": "1 hour"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 0, "window": "1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 2.5, "window": "1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": "10", "window": "1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 99999999999999999999, "window": "1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 1}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 1, "window": "soon"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 1, "window": "-1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 1, "window": "0"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 1, "window": "1 minute", "unit": "bytes"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 1, "window": "1 minute", "burst": 2}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme',
    rate_limits => (SELECT jsonb_agg(jsonb_build_object('name', 'l' || i, 'limit', 1, 'window', '1 minute')) FROM generate_series(1, 17) i));
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'acme', rate_limit_max => 1, rate_limit_window => '1 minute',
    rate_limits => '[{"name": "default", "limit": 5, "window": "1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.update_api_key(:'did', rate_limits => '[{"name": "default", "limit": 5, "window": "1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = :keys_before AS nothing_written FROM apikey.keys;
-- A list written around the functions (here by a superuser, straight into the table) is
-- not metered by guesswork: verify says so, with 55000.
SELECT key AS t, key_id AS tid FROM apikey.create_api_key(org_id => 'acme', name => 'tampered',
    rate_limits => '[{"name": "a", "limit": 1, "window": "1 minute"}]') \gset
UPDATE apikey.keys SET rate_limits = '[{"name": "a", "limit": 1}]' WHERE id = :'tid';
SELECT code FROM apikey.verify_api_key(:'t');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.delete_api_key(:'tid');
-- A policy field: ordinary callers may not set it.
SET ROLE regress_admin;
SELECT apikey.create_api_key(org_id => 'acme', rate_limits => '[{"name": "a", "limit": 1, "window": "1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- ---------------------------------------------------------------- limits shared by an owner

SELECT id FROM apikey.create_organization('metered', 'A metered customer');
SELECT org_id, user_id, role FROM apikey.add_member('metered', 'regress_member', 'member');
SELECT org_id, user_id, role FROM apikey.add_member('metered', 'regress_admin', 'admin');
SELECT key AS m1, key_id AS m1id FROM apikey.create_api_key(org_id => 'metered', name => 'one', remaining => 100) \gset
SELECT key AS m2 FROM apikey.create_api_key(org_id => 'metered', name => 'two') \gset
SELECT apikey.set_owner_limits(org_id => 'metered', remaining => 10, refill_amount => 10,
    refill_interval => '1 month', rate_limits => '[{"name": "org_hourly", "limit": 4, "window": "1 hour"}]');
-- Both keys spend the organization's quota; remaining is the least left anywhere.
SELECT code, remaining, jsonb_path_query_array(rate_limits, '$[*].scope') AS scopes
  FROM apikey.verify_api_key(:'m1', cost => 3);
SELECT code, remaining, jsonb_path_query_array(rate_limits, '$[*] ? (@.scope == "owner").remaining') AS org_left
  FROM apikey.verify_api_key(:'m2', cost => 3);
SELECT code, remaining FROM apikey.verify_api_key(:'m2', cost => 5);
-- Refused by the owner's quota: the key's own quota is not spent either.
SELECT remaining AS key_remaining FROM apikey.get_api_key(:'m1id');
SELECT code, remaining, retry_after > interval '27 days' AS retry_at_the_refill FROM apikey.verify_api_key(:'m1', cost => 5);
SELECT remaining AS key_remaining FROM apikey.get_api_key(:'m1id');
SELECT code, remaining FROM apikey.verify_api_key(:'m1', cost => 4);
-- A call of cost 0 is admitted and counts in no limit.
SELECT code, rate_limits -> 0 -> 'remaining' AS hourly_left FROM apikey.verify_api_key(:'m2', cost => 0);
SELECT apikey.set_owner_limits(org_id => 'metered', rate_limits => '[{"name": "org_hourly", "limit": 1, "window": "1 hour"}]');
SELECT code FROM apikey.verify_api_key(:'m2');
-- Refused by the owner's rate limit: nothing of the key's is counted or spent.
SELECT remaining AS key_before FROM apikey.get_api_key(:'m1id') \gset
SELECT code, retry_after > interval '59 minutes' AS wait_for_the_window FROM apikey.verify_api_key(:'m1');
SELECT remaining = :key_before AS key_untouched FROM apikey.get_api_key(:'m1id');
-- What trusted callers and members whose role allows read see; a plain member's role
-- does not (by default), and it is answered as for an invisible key.
SELECT org_id, user_id, remaining, refill_amount, refill_interval, next_refill_at IS NULL AS no_refill,
       rate_limits, rate_limit_state -> 0 -> 'remaining' AS hourly_left
  FROM apikey.get_owner_limits(org_id => 'metered');
SET ROLE regress_admin;
SELECT org_id, remaining, rate_limit_state -> 0 ->> 'name' AS name FROM apikey.get_owner_limits(org_id => 'metered');
RESET ROLE;
SET ROLE regress_member;
SELECT org_id, remaining FROM apikey.get_owner_limits(org_id => 'metered');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_stranger;
SELECT org_id FROM apikey.get_owner_limits(org_id => 'metered');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_owner_limits(org_id => 'metered');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_owner;
SELECT apikey.set_owner_limits(org_id => 'acme', remaining => 1000000);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- A user's limits apply to that user's own keys, not to organization keys it made.
SELECT key AS u FROM apikey.create_api_key(user_id => 'regress_member', name => 'mine') \gset
SELECT apikey.set_owner_limits(user_id => 'regress_member', remaining => 1);
SELECT code, remaining FROM apikey.verify_api_key(:'u');
SELECT code, remaining FROM apikey.verify_api_key(:'u');
SET ROLE regress_member;
SELECT user_id, remaining FROM apikey.get_owner_limits(user_id => 'regress_member');
SELECT user_id FROM apikey.get_owner_limits(user_id => 'regress_admin');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- All NULL removes them; the keys are unlimited again. Every change is in the audit trail.
SELECT apikey.set_owner_limits(user_id => 'regress_member');
SELECT count(*) FROM apikey.get_owner_limits(user_id => 'regress_member');
SELECT code, remaining FROM apikey.verify_api_key(:'u');
-- (The refill anchor defaults to the moment of the call: shown as whether it is set.)
SELECT action, org_id, subject, actor_role, details - 'refill_anchor' AS details,
       details -> 'refill_anchor' <> 'null' AS anchored
  FROM apikey.list_audit_events() WHERE action = 'owner_limits_set' ORDER BY at;
-- Bad arguments.
SELECT apikey.set_owner_limits(remaining => 1);
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_owner_limits(org_id => 'metered', user_id => 'x', remaining => 1);
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_owner_limits(org_id => 'nowhere', remaining => 1);
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_owner_limits(org_id => 'metered', remaining => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_owner_limits(org_id => 'metered', remaining => 1, refill_amount => 1);
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_owner_limits(org_id => 'metered', refill_amount => 1, refill_interval => '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_owner_limits(org_id => 'metered', rate_limits => '[{"name": "x", "limit": -1, "window": "1 day"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.get_owner_limits();
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------- read-only transactions

-- Keys and owners without limits verify; a limit that must count is 25006; cost 0 counts
-- nothing and so verifies too.
BEGIN TRANSACTION READ ONLY;
SELECT code FROM apikey.verify_api_key(:'plain');
SELECT code FROM apikey.verify_api_key(:'u');
SELECT code, remaining FROM apikey.verify_api_key(:'m1', cost => 0);
-- Reading is no write: management reads work too, and nothing asked for a transaction id
-- (a hot standby has none to give).
SELECT count(*) AS keys FROM apikey.list_api_keys(org_id => 'metered');
SELECT org_id FROM apikey.get_owner_limits(org_id => 'metered');
SELECT txid_current_if_assigned() IS NULL AS no_transaction_id;
SELECT code FROM apikey.verify_api_key(:'m2');
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_owner_limits(org_id => 'metered');
