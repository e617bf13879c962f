-- verify_api_key: exactly one row for any input; codes in the contract's order.
SELECT key AS k, key_id AS kid FROM apikey.create_api_key(org_id => 'acme', name => 'verify-me',
    permissions => '{"files": ["read", "write"], "mesa": ["admin"]}', metadata => '{"env": "test"}') \gset

SELECT valid, code, org_id, name, permissions, metadata, remaining, expires_at
  FROM apikey.verify_api_key(:'k');

-- required_permissions: every listed action must be granted (AND).
SELECT code FROM apikey.verify_api_key(:'k', '{"files": ["read"]}');
SELECT code FROM apikey.verify_api_key(:'k', '{"files": ["write", "read"], "mesa": ["admin"]}');
SELECT code FROM apikey.verify_api_key(:'k', '{"files": ["delete"]}');
SELECT code FROM apikey.verify_api_key(:'k', '{"files": ["read"], "billing": ["read"]}');
SELECT code FROM apikey.verify_api_key(:'k', '{}');

-- A malformed requirement is the caller's bug: 22023, for any key.
SELECT code FROM apikey.verify_api_key(:'k', '["files"]');
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key('garbage', '{"files": "read"}');
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key(:'k', '{"files": [1]}');
\echo :LAST_ERROR_SQLSTATE

-- Bad keys: one row each, KEY_NOT_FOUND, no error.
SELECT count(*) AS rows, min(code) AS code, bool_and(NOT valid) AS all_invalid, bool_and(key_id IS NULL) AS no_ids
  FROM (VALUES (NULL), (''), ('ak_'), ('dp_live_'), (repeat('x', 100000)), ('ключ🔑'),
               (left(:'k', 20) || CASE substr(:'k', 21, 1) WHEN 'a' THEN 'b' ELSE 'a' END || substr(:'k', 22)),
               (upper(:'k')), (:'k' || ' '), (' ' || :'k')) AS bad (key),
       LATERAL apikey.verify_api_key(bad.key);

-- A key whose checksum is right but which was never stored.
SELECT code FROM apikey.verify_api_key('ak_00000000000000000000000000000000000000000002PL60u');
SELECT length('ak_00000000000000000000000000000000000000000002PL60u') = 3 + 43 + 6 AS documented_length;

-- Order: disabled outranks expired, expired outranks permissions.
UPDATE apikey.keys SET expires_at = now() - interval '1 minute' WHERE id = :'kid';
SELECT valid, code, name FROM apikey.verify_api_key(:'k', '{"files": ["delete"]}');
UPDATE apikey.keys SET enabled = false WHERE id = :'kid';
SELECT valid, code, name FROM apikey.verify_api_key(:'k', '{"files": ["delete"]}');

-- Revoked: KEY_NOT_FOUND, and nothing about the key.
SELECT name, revoked_at IS NOT NULL AS revoked FROM apikey.revoke_api_key(:'kid');
SELECT valid, code, key_id, name FROM apikey.verify_api_key(:'k');

-- Any role may verify (it reveals nothing without the secret) ...
SELECT key AS k2 FROM apikey.create_api_key(org_id => 'acme', name => 'public-check') \gset
SET ROLE regress_stranger;
SELECT valid, code, name FROM apikey.verify_api_key(:'k2');
RESET ROLE;
-- ... until a DBA revokes it.
REVOKE EXECUTE ON FUNCTION apikey.verify_api_key(text, jsonb, integer) FROM PUBLIC;
SET ROLE regress_stranger;
SELECT valid FROM apikey.verify_api_key(:'k2');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT EXECUTE ON FUNCTION apikey.verify_api_key(text, jsonb, integer) TO PUBLIC;

-- An expiry in the future is accepted and returned.
SELECT key AS k3 FROM apikey.create_api_key(org_id => 'acme', expires_at => now() + interval '1 hour') \gset
SELECT code, expires_at > now() AS in_future FROM apikey.verify_api_key(:'k3');
