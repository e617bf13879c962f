-- Leaked keys (docs/sql-reference.md, "When a key leaks"): a secret scanner's report in,
-- GitHub's feedback rows out; the action on true positives; the audit trail. (The events
-- on channel apikey_events are tested over real connections: tests/integration.)
SELECT key AS lk1, key_id AS lid1 FROM apikey.create_api_key(org_id => 'acme', name => 'leak-revoke') \gset
SELECT key AS lk2, key_id AS lid2 FROM apikey.create_api_key(org_id => 'acme', name => 'leak-disable') \gset
SELECT key AS lk3, key_id AS lid3 FROM apikey.create_api_key(org_id => 'acme', name => 'leak-none') \gset
SELECT key AS lk4, key_id AS lid4 FROM apikey.create_api_key(org_id => 'acme', name => 'leak-deleted') \gset
SELECT apikey.delete_api_key(:'lid4');

-- The expression to register with a scanner is the prefix and 49 base62 characters
-- (docs: "When a key leaks"): every key matches its prefix's expression.
SELECT bool_and(k ~ ('^ak_[0-9A-Za-z]{49}$')) AS default_prefix_matches FROM (VALUES (:'lk1'), (:'lk2'), (:'lk3')) AS v (k);
SELECT key ~ '^acme_live_[0-9A-Za-z]{49}$' AS own_prefix_matches
  FROM apikey.create_api_key(org_id => 'acme', name => 'leak-prefixed', prefix => 'acme_live_');

-- A true positive, revoked (the default action); token_hash is the token's hex SHA-256.
SELECT r.token_hash = encode(sha256(convert_to(:'lk1', 'UTF8')), 'hex') AS is_sha256, r.token_type, r.label
  FROM apikey.report_exposed_keys(jsonb_build_array(jsonb_build_object(
         'token', :'lk1', 'type', 'acme_api_key',
         'url', 'https://github.com/octo/app/blob/1a2b/config.py', 'source', 'content'))) AS r;
SELECT code FROM apikey.verify_api_key(:'lk1');
SELECT revoked_at IS NOT NULL AS revoked FROM apikey.get_api_key(:'lid1');

-- disable: the key answers KEY_DISABLED, and can be enabled again.
SELECT label FROM apikey.report_exposed_keys(jsonb_build_array(jsonb_build_object('token', :'lk2')), 'disable');
SELECT code FROM apikey.verify_api_key(:'lk2');
-- none: only recorded (and announced).
SELECT label FROM apikey.report_exposed_keys(jsonb_build_array(jsonb_build_object('token', :'lk3')), action => 'none');
SELECT code FROM apikey.verify_api_key(:'lk3');

-- False positives: a key with a wrong checksum (one character changed), another
-- vendor's token, a key that was deleted (its checksum holds, its digest is not found).
-- An already revoked key: a true positive, left alone. One row per report, in order.
SELECT r.label, r.token_type
  FROM apikey.report_exposed_keys(jsonb_build_array(
         jsonb_build_object('token', left(:'lk3', -1) || CASE WHEN right(:'lk3', 1) = 'A' THEN 'B' ELSE 'A' END, 'type', 'mistyped'),
         jsonb_build_object('token', 'ghp_notakeyofours0000000000000000000000', 'type', 'github'),
         jsonb_build_object('token', :'lk4', 'type', 'deleted'),
         jsonb_build_object('token', :'lk1', 'type', 'again'))) AS r;

-- An imported key (another system's format) is a true positive too.
SELECT apikey.import_api_key(sha256(convert_to('legacy_live_4f2a9c1d7e', 'UTF8')), org_id => 'acme', name => 'legacy') AS limp \gset
SELECT label FROM apikey.report_exposed_keys('[{"token": "legacy_live_4f2a9c1d7e", "type": "legacy"}]');
SELECT revoked_at IS NOT NULL AS revoked FROM apikey.get_api_key(:'limp');

-- An empty report: no rows.
SELECT count(*) FROM apikey.report_exposed_keys('[]');

-- The audit trail: key_exposed with url, source and what was done, then the action.
SELECT e.action, k.name, e.details->>'action' AS done, e.details->>'url' AS url,
       e.details->>'source' AS source, e.details->>'reason' AS reason
  FROM apikey.list_audit_events('acme') AS e JOIN apikey.list_api_keys('acme') AS k USING (key_id)
 WHERE k.name IN ('leak-revoke', 'leak-disable', 'leak-none', 'legacy')
   AND e.action IN ('key_exposed', 'key_revoked', 'key_updated')
 ORDER BY e.id;

-- Malformed reports: 22023, naming the element.
SELECT * FROM apikey.report_exposed_keys('{"token": "x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.report_exposed_keys('[{"token": "x"}, "y"]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.report_exposed_keys('[{"type": "x"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.report_exposed_keys('[{"token": 42}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.report_exposed_keys('[{"token": ""}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.report_exposed_keys('[{"token": "x", "url": ["a"]}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.report_exposed_keys(jsonb_build_array(jsonb_build_object('token', repeat('a', 4097))));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.report_exposed_keys((SELECT jsonb_agg(jsonb_build_object('token', 'x' || g)) FROM generate_series(1, 1001) g));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.report_exposed_keys(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM apikey.report_exposed_keys('[]', 'delete');
\echo :LAST_ERROR_SQLSTATE

-- Ordinary roles: 42501, whatever their membership.
SET ROLE regress_owner;
SELECT * FROM apikey.report_exposed_keys('[]');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_deployer;
SELECT count(*) FROM apikey.report_exposed_keys('[]');
RESET ROLE;
