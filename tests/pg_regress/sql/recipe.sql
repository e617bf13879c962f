-- The least-privilege recipe (examples/least_privilege.sql, shown in
-- docs/application-developers.md "Roles for a SaaS backend"), applied as written: the
-- API server's role verifies and can do nothing else; the provisioning role can do
-- everything; gateway members keep what the recipe grants them.
\i examples/least_privilege.sql
-- Idempotent: a second run changes nothing and fails on nothing.
\i examples/least_privilege.sql
\set ON_ERROR_STOP 0

SELECT id FROM apikey.create_organization('recipe');
SELECT key AS rk, key_id AS rid FROM apikey.create_api_key(org_id => 'recipe', name => 'counted',
    remaining => 5, rate_limits => '[{"name": "minute", "limit": 3, "window": "1 minute"}]') \gset

-- The API server: verify, with every header from verify's own row.
SET ROLE app_api;
SELECT code, remaining, jsonb_path_query_first(rate_limits, '$[0].remaining') AS rate_remaining
  FROM apikey.verify_api_key(:'rk');
-- ... and nothing else: not create (not even a user key of its own), read, list, update,
-- rotate, revoke, delete, nor the organization's limits.
SELECT apikey.create_api_key(name => 'mine');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.create_api_key(org_id => 'recipe');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.get_api_key(:'rid');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.list_api_keys('recipe');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.update_api_key(:'rid', name => 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.rotate_api_key(:'rid');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.revoke_api_key(:'rid');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.delete_api_key(:'rid');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.get_owner_limits(org_id => 'recipe');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_owner_limits(org_id => 'recipe', remaining => 1);
\echo :LAST_ERROR_SQLSTATE
-- ... nor usage: key_usage, owner_usage, usage_live, flush_usage.
SELECT apikey.key_usage(:'rid');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.owner_usage(org_id => 'recipe');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.usage_live();
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.flush_usage();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The provisioning role: organization keys with no user, limits, and the key's life.
SET ROLE app_provisioner;
SELECT org_id, user_id, remaining FROM apikey.create_api_key(org_id => 'recipe', name => 'ci', remaining => 10);
SELECT name FROM apikey.update_api_key(:'rid', name => 'renamed');
SELECT remaining FROM apikey.get_api_key(:'rid');
SELECT apikey.set_owner_limits(org_id => 'recipe', remaining => 100);
SELECT remaining FROM apikey.get_owner_limits(org_id => 'recipe');
SELECT revoked_at IS NOT NULL AS revoked FROM apikey.revoke_api_key(:'rid');
RESET ROLE;

-- Gateway members (app_members): a member acts on its organization's keys as its
-- membership role allows; the identity comes from the request's claims.
CREATE ROLE regress_recipe_web IN ROLE app_members;
SET apikey.gateway_roles = 'regress_recipe_web';
SELECT org_id, user_id, role FROM apikey.add_member('recipe', 'user-7', 'admin');
BEGIN;
SET LOCAL ROLE regress_recipe_web;
SELECT set_config('request.jwt.claims', '{"sub": "user-7"}', true) IS NOT NULL AS claims;
SELECT org_id, name FROM apikey.create_api_key(org_id => 'recipe', name => 'by a member');
SELECT count(*) AS listed FROM apikey.list_api_keys('recipe');
-- Usage is granted to members (this cluster does not preload the library: 55000, not 42501).
SAVEPOINT usage;
SELECT apikey.owner_usage(org_id => 'recipe');
ROLLBACK TO usage;
-- ... but not the limits, which the recipe keeps for the service role.
SELECT apikey.set_owner_limits(org_id => 'recipe', remaining => 1);
ROLLBACK;
-- The API role is no gateway: verify only, whoever the claims name.
BEGIN;
SET LOCAL ROLE app_api;
SELECT set_config('request.jwt.claims', '{"sub": "user-7"}', true) IS NOT NULL AS claims;
SELECT apikey.list_api_keys('recipe');
ROLLBACK;
RESET apikey.gateway_roles;

-- Undone for the tests after this one: the defaults back, the roles gone.
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA apikey TO PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA apikey FROM app_api, app_members, apikey_service;
DROP ROLE regress_recipe_web, app_api, app_members;
REVOKE apikey_service FROM app_provisioner;
DROP ROLE app_provisioner;
