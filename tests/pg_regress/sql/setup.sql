-- Install pg_apikey and the cast of this story: a service role for automation, an
-- organization with an owner, an admin and a plain member, and a stranger.
-- Errors print their SQLSTATE with \echo :LAST_ERROR_SQLSTATE.
CREATE EXTENSION pg_apikey;
SELECT extname, extversion, n.nspname AS schema, extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'pg_apikey';
-- Releases update in place: ALTER EXTENSION pg_apikey UPDATE from 0.1.0.
SELECT source, target, path FROM pg_extension_update_paths('pg_apikey')
 WHERE path IS NOT NULL AND source = '0.1.0' ORDER BY target;

-- The extension created the service role, NOLOGIN.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'apikey_service';
SHOW apikey.service_role;
SHOW apikey.default_prefix;

CREATE ROLE regress_deployer;                 -- automation: trusted through the service role
GRANT apikey_service TO regress_deployer;
CREATE ROLE regress_owner;
CREATE ROLE regress_admin;
CREATE ROLE regress_member;
CREATE ROLE regress_stranger;

SELECT id, name FROM apikey.create_organization('acme', 'Acme Inc.');
SELECT org_id, user_id, role FROM apikey.add_member('acme', 'regress_owner', 'owner');
SELECT org_id, user_id, role FROM apikey.add_member('acme', 'regress_admin', 'admin');
SELECT org_id, user_id, role FROM apikey.add_member('acme', 'regress_member');

-- The shipped role-to-action mapping.
SELECT role, string_agg(action, ',' ORDER BY action) FILTER (WHERE allowed) AS allows
  FROM apikey.list_role_actions() GROUP BY role ORDER BY role;
