-- Keys imported from another system (0.2.0): by the SHA-256 digest of their text, with
-- their owner, settings and history; they verify with their original text.
-- (examples/migrate_from_better_auth.sql and tests/better_auth run this against tables
-- written by the real better-auth.)

-- With no imported keys, a key without pg_apikey's checksum is refused without a lookup.
SELECT code FROM apikey.verify_api_key('ba_legacyKeyNumberOne');
SHOW apikey.accept_imported_keys;

SELECT apikey.import_api_key(sha256(convert_to('ba_legacyKeyNumberOne', 'UTF8')),
    org_id => 'acme', name => 'legacy one', prefix => 'ba_', start => 'ba_leg',
    permissions => '{"files": ["read"]}', metadata => '{"plan": "pro", "n": 1.50}',
    remaining => 5, refill_amount => 5, refill_interval => '1 day',
    rate_limit_max => 10, rate_limit_window => '1 minute',
    created_at => '2025-01-01 00:00:00+00', last_used_at => '2025-06-01 00:00:00+00') AS one \gset
SELECT org_id, user_id, name, prefix, start, enabled, permissions, metadata, remaining,
       refill_amount, refill_interval, rate_limit_max, rate_limit_window, created_at,
       last_used_at, imported
  FROM apikey.get_api_key(:'one');
-- It verifies with its original text; a mistyped one and garbage are still refused.
SELECT valid, code, org_id, name, permissions, metadata, remaining
  FROM apikey.verify_api_key('ba_legacyKeyNumberOne', '{"files": ["read"]}');
SELECT code FROM apikey.verify_api_key('ba_legacyKeyNumberOnE');
SELECT code FROM apikey.verify_api_key('');
SELECT code FROM apikey.verify_api_key(repeat('x', 10000));
-- Re-runnable: the same digest returns the same id and changes nothing.
SELECT count(*) AS events_before FROM apikey.audit_log \gset
SELECT apikey.import_api_key(sha256(convert_to('ba_legacyKeyNumberOne', 'UTF8')),
    org_id => 'acme', remaining => 999) = :'one' AS same_id;
SELECT remaining FROM apikey.get_api_key(:'one');
SELECT count(*) = :events_before AS no_new_events FROM apikey.audit_log;
-- History is accepted: expired, disabled, and user-owned keys.
SELECT apikey.import_api_key(sha256(convert_to('old-expired-key', 'UTF8')), user_id => 'regress_member',
    expires_at => '2020-01-01 00:00:00+00') AS expired \gset
SELECT code FROM apikey.verify_api_key('old-expired-key');
SELECT apikey.import_api_key(sha256(convert_to('old-disabled-key', 'UTF8')), user_id => 'regress_member',
    enabled => false) AS disabled \gset
SELECT code, user_id FROM apikey.verify_api_key('old-disabled-key');
-- The audit trail records each import once, with the key's public fields.
SELECT action, org_id, details -> 'key' ->> 'name' AS name, details -> 'key' ->> 'imported' AS imported
  FROM apikey.list_audit_events() WHERE action = 'key_imported' ORDER BY at;

-- Rotating an imported key gives a pg_apikey key (checksummed), with the same settings.
SELECT key AS rotated, key_id AS rotated_id, prefix FROM apikey.rotate_api_key(:'one') \gset
SELECT :'rotated' LIKE 'ba_%' AS keeps_its_prefix, length(:'rotated') > 40 AS long_secret;
SELECT code, name, remaining FROM apikey.verify_api_key(:'rotated');
SELECT imported, rotated_from = :'one' AS linked FROM apikey.get_api_key(:'rotated_id');
-- A key imported without a prefix rotates to the default prefix.
SELECT apikey.import_api_key(sha256(convert_to('noprefixkey123', 'UTF8')), org_id => 'acme') AS bare \gset
SELECT prefix, start FROM apikey.get_api_key(:'bare');
SELECT left(key, 3) AS new_prefix, prefix FROM apikey.rotate_api_key(:'bare');

-- The setting turns the fallback off (SUSET: superusers only).
SET apikey.accept_imported_keys = off;
SELECT code FROM apikey.verify_api_key('old-disabled-key');
RESET apikey.accept_imported_keys;
SELECT code FROM apikey.verify_api_key('old-disabled-key');
SET ROLE regress_admin;
SET apikey.accept_imported_keys = off;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Trusted callers only; bad arguments are 22023, an unknown organization P0002.
SET ROLE regress_owner;
SELECT apikey.import_api_key(sha256(convert_to('mine', 'UTF8')), user_id => 'regress_owner');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT apikey.import_api_key('\x0102'::bytea, org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.import_api_key(NULL, org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.import_api_key(sha256('x'), org_id => 'nowhere');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.import_api_key(sha256('x'));
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.import_api_key(sha256('x'), org_id => 'acme', prefix => 'bad prefix!');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.import_api_key(sha256('x'), org_id => 'acme', remaining => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.import_api_key(sha256('x'), org_id => 'acme', refill_amount => 1);
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.import_api_key(sha256('x'), org_id => 'acme', permissions => '["read"]');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS imported_keys FROM apikey.keys WHERE imported;

-- Once every imported key is revoked or deleted, a key without a checksum is refused
-- without a lookup again.
SELECT count(*) FROM (SELECT apikey.revoke_api_key(id) FROM apikey.keys WHERE imported AND revoked_at IS NULL) r;
SELECT code FROM apikey.verify_api_key('old-disabled-key');
