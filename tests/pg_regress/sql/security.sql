-- What an ordinary role cannot do: touch the tables, change the settings that decide
-- trust, or slip its own objects in front of the extension's.

SET ROLE regress_stranger;
SELECT count(*) FROM apikey.keys;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM apikey.members;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO apikey.members VALUES ('acme', 'regress_stranger', 'owner');
\echo :LAST_ERROR_SQLSTATE
UPDATE apikey.member_role_actions SET allowed = true;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM apikey.organizations;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE apikey.sneaky (x int);
\echo :LAST_ERROR_SQLSTATE

-- Settings are SUSET: not by SET, set_config or ALTER ROLE ... SET.
RESET ROLE;
SELECT valid FROM apikey.verify_api_key(NULL);   -- the library is loaded in this session
SELECT name, setting, context FROM pg_settings WHERE name LIKE 'apikey.%' ORDER BY name;
SET ROLE regress_stranger;
SET apikey.service_role = 'regress_stranger';
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('apikey.service_role', 'regress_stranger', false);
\echo :LAST_ERROR_SQLSTATE
SET apikey.default_prefix = 'x_';
\echo :LAST_ERROR_SQLSTATE
ALTER ROLE regress_stranger SET apikey.service_role = 'regress_stranger';
\echo :LAST_ERROR_SQLSTATE
SHOW apikey.service_role;
RESET ROLE;

-- In a new session, before the library is loaded, PostgreSQL accepts the SET as a
-- placeholder ...
\c
SET ROLE regress_stranger;
SET apikey.service_role = 'regress_stranger';
SHOW apikey.service_role;
-- ... and discards it when pg_apikey defines the parameter: the caller stays untrusted.
SELECT key FROM apikey.create_api_key(org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
SHOW apikey.service_role;
RESET ROLE;

-- No table holds a plaintext key: the secret part of a fresh key appears nowhere.
SELECT key AS fresh FROM apikey.create_api_key(org_id => 'acme', name => 'plaintext-check') \gset
SELECT count(*) AS tables_with_the_secret
  FROM (SELECT k::text AS t FROM apikey.keys k
        UNION ALL SELECT o::text FROM apikey.organizations o
        UNION ALL SELECT m::text FROM apikey.members m) rows
 WHERE strpos(rows.t, substr(:'fresh', 4, 43)) > 0;

-- Every function: documented, SECURITY INVOKER, search_path pinned (verify_api_key pins it
-- itself, around the only SQL it runs, so that its plain path pays nothing for it).
SELECT p.proname, p.prosecdef, p.proconfig, obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p WHERE p.pronamespace = 'apikey'::regnamespace ORDER BY p.proname;

-- Every table: no PUBLIC privileges, kept by pg_dump.
SELECT c.relname, c.relacl IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0) AS closed_to_public,
       c.oid = ANY (e.extconfig) AS dumped
  FROM pg_class c, pg_extension e
 WHERE c.relnamespace = 'apikey'::regnamespace AND c.relkind = 'r' AND e.extname = 'pg_apikey'
 ORDER BY c.relname;
