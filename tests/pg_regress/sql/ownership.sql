-- Who may create which key. The heart of pg_apikey.

-- 1. The seed case: automation (a service-role member, not a superuser) creates an
--    organization key with org_id alone. No user is needed.
SET ROLE regress_deployer;
SELECT key AS deploy_key, key_id AS deploy_id, start, prefix, org_id, user_id IS NULL AS no_user, name
  FROM apikey.create_api_key(org_id => 'acme', name => 'ci-deploy', prefix => 'dp_live_',
                             permissions => '{"mesa": ["admin"]}') \gset
SELECT :'prefix' AS prefix, :'org_id' AS org_id, :'no_user' AS no_user, :'name' AS name,
       length(:'deploy_key') AS key_length, :'start' = left(:'deploy_key', 12) AS start_is_head;
SELECT valid, code, org_id, user_id IS NULL AS no_user, name, permissions
  FROM apikey.verify_api_key(:'deploy_key');
RESET ROLE;

-- A superuser does the same.
SELECT key AS su_key FROM apikey.create_api_key(org_id => 'acme', permissions => '{"files": ["read"]}') \gset
SELECT valid, code, org_id, user_id IS NULL AS no_user, permissions FROM apikey.verify_api_key(:'su_key');

-- A trusted caller may record a user as the creator of an org key.
SELECT org_id, user_id FROM apikey.create_api_key(org_id => 'acme', user_id => 'regress_admin');

-- A trusted caller must name an owner.
SET ROLE regress_deployer;
SELECT key FROM apikey.create_api_key(name => 'orphan');
\echo :LAST_ERROR_SQLSTATE
-- An unknown organization.
SELECT key FROM apikey.create_api_key(org_id => 'nope');
\echo :LAST_ERROR_SQLSTATE
-- A user key for anyone.
SELECT org_id, user_id FROM apikey.create_api_key(user_id => 'some-user');
RESET ROLE;

-- 2. Ordinary callers act only as themselves, as far as their membership role allows.
-- The admin creates an org key: allowed.
SET ROLE regress_admin;
SELECT key AS admin_key FROM apikey.create_api_key(org_id => 'acme', name => 'admin-made') \gset
SELECT valid, code, org_id, user_id FROM apikey.verify_api_key(:'admin_key');
-- ... naming itself as the user is fine, naming another user is not.
SELECT org_id, user_id FROM apikey.create_api_key(org_id => 'acme', user_id => 'regress_admin');
SELECT key FROM apikey.create_api_key(org_id => 'acme', user_id => 'regress_owner');
\echo :LAST_ERROR_SQLSTATE
-- ... and it may not set policy fields.
SELECT key FROM apikey.create_api_key(org_id => 'acme', permissions => '{"mesa": ["admin"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT key FROM apikey.create_api_key(org_id => 'acme', remaining => 10);
\echo :LAST_ERROR_SQLSTATE
SELECT key FROM apikey.create_api_key(org_id => 'acme', rate_limit_max => 10, rate_limit_window => '1 minute');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The owner creates one too.
SET ROLE regress_owner;
SELECT org_id, user_id, name FROM apikey.create_api_key(org_id => 'acme', name => 'owner-made');
RESET ROLE;

-- A plain member has no create action.
SET ROLE regress_member;
SELECT key FROM apikey.create_api_key(org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A stranger is refused, whether the organization exists or not (42501 both times, so
-- a stranger cannot probe which organizations exist).
SET ROLE regress_stranger;
SELECT key FROM apikey.create_api_key(org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
SELECT key FROM apikey.create_api_key(org_id => 'nope');
\echo :LAST_ERROR_SQLSTATE

-- 3. User keys: with no org_id, an ordinary caller's key is its own.
SELECT key AS stranger_key, org_id, user_id FROM apikey.create_api_key(name => 'personal') \gset
SELECT :'user_id' AS owner;
SELECT valid, code, org_id IS NULL AS no_org, user_id FROM apikey.verify_api_key(:'stranger_key');
SELECT org_id, user_id FROM apikey.create_api_key(user_id => 'regress_stranger');
SELECT key FROM apikey.create_api_key(user_id => 'regress_admin');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 4. Every key records who made it.
SELECT name, org_id, user_id, created_by_role, created_by_identity
  FROM apikey.list_api_keys(org_id => 'acme') ORDER BY created_at;

-- 5. Member management: trusted callers and owners only.
SET ROLE regress_admin;
SELECT apikey.add_member('acme', 'regress_stranger', 'admin');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_owner;
SELECT org_id, user_id, role FROM apikey.add_member('acme', 'regress_stranger', 'member');
SELECT apikey.add_member('acme', 'regress_stranger', 'emperor');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.remove_member('acme', 'regress_stranger') AS removed;
SELECT apikey.remove_member('acme', 'regress_stranger') AS removed_again;
-- Only trusted callers create organizations.
SELECT apikey.create_organization('owner-org');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT apikey.add_member('nope', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_organization('acme');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_organization('');
\echo :LAST_ERROR_SQLSTATE

-- A backend role that was never granted the service role: the 42501 hint gives the
-- statement that fixes it, with the role's name quoted as SQL needs it.
CREATE ROLE "Regress Backend";
SET ROLE "Regress Backend";
SELECT key_id FROM apikey.create_api_key(org_id => 'acme', name => 'backend');
RESET ROLE;
DROP ROLE "Regress Backend";
