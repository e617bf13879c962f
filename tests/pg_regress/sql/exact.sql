-- Values are kept exactly: permissions, metadata and required_permissions are stored and
-- returned as the jsonb values PostgreSQL holds — numbers of any size and precision, any
-- depth jsonb accepts — and every malformed shape is 22023, never XX000.
SELECT id FROM apikey.create_organization('exact_org');
\set big '{"a": 123456789012345678901234567890, "b": 18446744073709551617, "c": 0.1000000000000000000001, "d": 1e400, "e": 1.000, "f": -0.0, "g": 2.5e-324}'
SELECT key AS k, key_id AS kid, metadata AS created_metadata
  FROM apikey.create_api_key(org_id => 'exact_org', name => 'exact', metadata => :'big',
                             permissions => '{"files": ["read"], "n": []}') \gset
-- Returned by create, stored, listed, verified: the same value, to the last digit.
-- Compared as text: jsonb's = compares numbers by value (1.000 = 1, 1.50 = 1.5), its text
-- keeps each number's digits and scale, so a value rewritten on the way would show here.
-- (PostgreSQL's numeric has no negative zero: -0.0 is read as 0.0 by jsonb itself.)
SELECT '{"e": 1.000, "f": 1.50}'::jsonb = '{"e": 1, "f": 1.5}'::jsonb AS equality_misses_scale,
       '{"e": 1.000, "f": 1.50}'::jsonb::text = '{"e": 1, "f": 1.5}'::jsonb::text AS text_sees_it;
SELECT :'created_metadata'::jsonb::text = :'big'::jsonb::text AS create_returns_it,
       (SELECT metadata FROM apikey.keys WHERE id = :'kid')::text = :'big'::jsonb::text AS stored,
       (SELECT metadata FROM apikey.get_api_key(:'kid'))::text = :'big'::jsonb::text AS get_returns_it,
       (SELECT metadata FROM apikey.verify_api_key(:'k'))::text = :'big'::jsonb::text AS verify_returns_it;
SELECT metadata -> 'a' AS a, metadata -> 'b' AS b, metadata -> 'c' AS c, metadata -> 'e' AS e, metadata -> 'f' AS f
  FROM apikey.verify_api_key(:'k');

-- 140 levels deep (more than a JSON parser's usual 128) and Unicode escapes.
SELECT repeat('{"x": ', 140) || '"bottom \u00e9\ud83d\ude00"' || repeat('}', 140) AS deep \gset
SELECT key_id AS deep_id FROM apikey.create_api_key(org_id => 'exact_org', name => 'deep', metadata => :'deep') \gset
SELECT (SELECT metadata FROM apikey.get_api_key(:'deep_id'))::text = :'deep'::jsonb::text AS deep_kept,
       jsonb_path_query_first((SELECT metadata FROM apikey.get_api_key(:'deep_id')),
                              ('$' || repeat('.x', 140))::jsonpath) AS bottom;

-- update_api_key keeps them exactly too, and so does the audit trail.
SELECT metadata::text = :'big'::jsonb::text AS unchanged_by_rename
  FROM apikey.update_api_key(:'kid', name => 'exact, renamed');
SELECT metadata::text = '{"n": 100000000000000000000000000001}'::jsonb::text AS updated_exactly
  FROM apikey.update_api_key(:'kid', metadata => '{"n": 100000000000000000000000000001}');
SELECT details -> 'changes' -> 'metadata' AS audited_change, details -> 'changes' ->> 'name' AS no_name_change
  FROM apikey.list_audit_events(org_id => 'exact_org') WHERE key_id = :'kid' AND action = 'key_updated' ORDER BY id DESC LIMIT 1;
SELECT (details -> 'key' -> 'metadata')::text = :'big'::jsonb::text AS audited_creation
  FROM apikey.list_audit_events(org_id => 'exact_org') WHERE key_id = :'kid' AND action = 'key_created';
-- Rotation copies them as they are.
SELECT metadata::text = '{"n": 100000000000000000000000000001}'::jsonb::text AS rotated_exactly
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
