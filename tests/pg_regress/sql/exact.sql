-- Values are kept exactly: permissions, metadata and required_permissions are stored and
-- returned as the jsonb values PostgreSQL holds — numbers of any size and precision, any
-- depth jsonb accepts — and every malformed shape is 22023, never XX000.
SELECT id FROM apikey.create_organization('exact_org');
\set big '{"a": 123456789012345678901234567890, "b": 18446744073709551617, "c": 0.1000000000000000000001, "d": 1e400, "e": 1.000, "f": -0.0, "g": 2.5e-324}'
SELECT key AS k, key_id AS kid, metadata AS created_metadata
  FROM apikey.create_api_key(org_id => 'exact_org', name => 'exact', metadata => :'big',
                             permissions => '{"files": ["read"], "n": []}') \gset
-- Returned by create, stored, listed, verified: the same value, to the last digit.
SELECT :'created_metadata'::jsonb = :'big'::jsonb AS create_returns_it,
       (SELECT metadata FROM apikey.keys WHERE id = :'kid') = :'big'::jsonb AS stored,
       (SELECT metadata FROM apikey.get_api_key(:'kid')) = :'big'::jsonb AS get_returns_it,
       (SELECT metadata FROM apikey.verify_api_key(:'k')) = :'big'::jsonb AS verify_returns_it;
SELECT metadata -> 'a' AS a, metadata -> 'b' AS b, metadata -> 'c' AS c, metadata -> 'e' AS e
  FROM apikey.verify_api_key(:'k');

-- 140 levels deep (more than a JSON parser's usual 128) and Unicode escapes.
SELECT repeat('{"x": ', 140) || '"bottom \u00e9\ud83d\ude00"' || repeat('}', 140) AS deep \gset
SELECT key_id AS deep_id FROM apikey.create_api_key(org_id => 'exact_org', name => 'deep', metadata => :'deep') \gset
SELECT (SELECT metadata FROM apikey.get_api_key(:'deep_id')) = :'deep'::jsonb AS deep_kept,
       jsonb_path_query_first((SELECT metadata FROM apikey.get_api_key(:'deep_id')),
                              ('$' || repeat('.x', 140))::jsonpath) AS bottom;

-- update_api_key keeps them exactly too, and so does the audit trail.
SELECT metadata = :'big'::jsonb AS unchanged_by_rename
  FROM apikey.update_api_key(:'kid', name => 'exact, renamed');
SELECT metadata = '{"n": 100000000000000000000000000001}'::jsonb AS updated_exactly
  FROM apikey.update_api_key(:'kid', metadata => '{"n": 100000000000000000000000000001}');
SELECT details -> 'changes' -> 'metadata' AS audited_change, details -> 'changes' ->> 'name' AS no_name_change
  FROM apikey.list_audit_events(org_id => 'exact_org') WHERE key_id = :'kid' AND action = 'key_updated' ORDER BY id DESC LIMIT 1;
SELECT details -> 'key' -> 'metadata' = :'big'::jsonb AS audited_creation
  FROM apikey.list_audit_events(org_id => 'exact_org') WHERE key_id = :'kid' AND action = 'key_created';
-- Rotation copies them as they are.
SELECT metadata = '{"n": 100000000000000000000000000001}'::jsonb AS rotated_exactly
  FROM apikey.rotate_api_key(:'kid', grace => '1 hour');

-- Numbers jsonb accepts are fine in requirements too; only the shape is checked.
SELECT code FROM apikey.verify_api_key(:'k', '{"files": ["read"], "n": []}');
-- Malformed shapes: 22023 with a pg_apikey message naming the fault, for any key.
\set VERBOSITY default
SELECT code FROM apikey.verify_api_key('x', '1e400');
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key('x', '{"files": [1e400]}');
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key('x', :'deep');
\echo :LAST_ERROR_SQLSTATE
SELECT code FROM apikey.verify_api_key('x', (repeat('[', 128) || repeat(']', 128))::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT key FROM apikey.create_api_key(org_id => 'exact_org', permissions => '{"files": [1e400]}');
\echo :LAST_ERROR_SQLSTATE
SELECT key FROM apikey.create_api_key(org_id => 'exact_org', metadata => '1e400');
\echo :LAST_ERROR_SQLSTATE
SELECT key FROM apikey.create_api_key(org_id => 'exact_org', metadata => '[{"a": 1}]');
\echo :LAST_ERROR_SQLSTATE
SELECT key_id FROM apikey.update_api_key(:'kid', permissions => '{"files": "read"}');
\echo :LAST_ERROR_SQLSTATE
