-- Identity from the application: JWT claims behind PostgREST/Supabase, and
-- organizations and members from the application's own tables.

-- 1. By default an ordinary caller's identity is its role name; a trusted caller has none.
SELECT apikey.current_identity() AS superuser_identity;
SET ROLE regress_stranger;
SELECT apikey.current_identity() AS stranger_identity;
-- Setting JWT claims changes nothing for a role that is not a gateway role.
SELECT set_config('request.jwt.claims', '{"sub": "regress_admin"}', false) IS NOT NULL AS claims_set;
SELECT apikey.current_identity() AS still_the_role_name;
SELECT key FROM apikey.create_api_key(org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET request.jwt.claims;

-- 2. Gateway roles: PostgREST logs in as an authenticator and, per request, switches to
--    the request's role and sets the JWT claims for the transaction.
CREATE ROLE regress_authenticated NOLOGIN;
CREATE ROLE regress_authenticator NOINHERIT;
GRANT regress_authenticated TO regress_authenticator;
ALTER DATABASE :"DBNAME" SET apikey.gateway_roles = 'regress_authenticated';
\c
SHOW apikey.gateway_roles;
SELECT org_id, user_id, role FROM apikey.add_member('acme', 'user-0001', 'admin');

SET SESSION AUTHORIZATION regress_authenticator;
-- Request 1: user-0001, an admin of acme.
BEGIN;
SET LOCAL ROLE regress_authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "user-0001", "role": "regress_authenticated"}', true) IS NOT NULL AS claims;
SELECT apikey.current_identity();
SELECT key_id AS pgrst_key, org_id, user_id FROM apikey.create_api_key(org_id => 'acme', name => 'from-postgrest') \gset
SELECT name, created_by_role, created_by_identity FROM apikey.get_api_key(:'pgrst_key');
SELECT org_id, user_id FROM apikey.create_api_key(name => 'user-0001 personal');
COMMIT;
-- Nothing is left over between requests.
SELECT current_user, current_setting('request.jwt.claims', true) AS claims_after_commit;
-- Request 2, same connection: user-0002, not a member.
BEGIN;
SET LOCAL ROLE regress_authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "user-0002", "role": "regress_authenticated"}', true) IS NOT NULL AS claims;
SELECT apikey.current_identity();
SELECT key FROM apikey.create_api_key(org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL ROLE regress_authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "user-0002", "role": "regress_authenticated"}', true) IS NOT NULL AS claims;
SELECT count(*) AS user_0002_sees FROM apikey.list_api_keys();
COMMIT;
-- Request 3: no claims at all, or no "sub": no identity, 42501.
BEGIN;
SET LOCAL ROLE regress_authenticated;
SELECT apikey.current_identity() IS NULL AS no_identity;
SELECT key FROM apikey.create_api_key();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL ROLE regress_authenticated;
SELECT set_config('request.jwt.claims', '{"role": "regress_authenticated", "sub": ""}', true) IS NOT NULL AS claims;
SELECT key FROM apikey.create_api_key();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- Request 4: claims that name nobody. A NUL inside the claim (it would read as "alice"
-- over the text protocol and in a dump), other control characters, more than 256 bytes,
-- a number with a fraction or exponent: no identity, 42501, and nothing is created.
-- An integer names the user by its decimal text.
CREATE TEMP TABLE claims_tried (claims text, identity text, sqlstate text);
GRANT ALL ON claims_tried TO PUBLIC;
BEGIN;
SET LOCAL ROLE regress_authenticated;
DO $try$
DECLARE
    c text;
    state text;
BEGIN
    FOREACH c IN ARRAY ARRAY[
        '{"sub": "alice\u0000x"}', '{"sub": "alice\nx"}', '{"sub": "\u007f"}',
        '{"sub": "' || repeat('a', 257) || '"}', '{"sub": "' || repeat('a', 100000) || '"}',
        '{"sub": 1.5e3}', '{"sub": 0.5}', '{"sub": true}', '{"sub": ["alice"]}',
        '{"sub": 123}', '{"sub": "' || repeat('a', 256) || '"}'] LOOP
        PERFORM set_config('request.jwt.claims', c, true);
        state := 'created';
        BEGIN
            PERFORM apikey.create_api_key(name => 'claims test');
        EXCEPTION WHEN OTHERS THEN
            state := SQLSTATE;
        END;
        INSERT INTO claims_tried VALUES (left(c, 24), left(apikey.current_identity(), 12), state);
    END LOOP;
END
$try$;
SELECT * FROM claims_tried;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT left(user_id, 12) AS user_id, length(user_id) FROM apikey.keys WHERE name = 'claims test' ORDER BY 2;

-- A superuser chooses which claim holds the user id.
BEGIN;
SET LOCAL apikey.identity_claim = 'email';
SET LOCAL ROLE regress_authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "user-0001", "email": "ada@example.com"}', true) IS NOT NULL AS claims;
SELECT apikey.current_identity();
ROLLBACK;
ALTER DATABASE :"DBNAME" RESET apikey.gateway_roles;
\c

-- 3. Bring-your-own membership: the organization schema of a widely used TypeScript auth
--    library, where member.role may hold several comma-separated roles.
\i examples/better_auth_membership.sql
INSERT INTO public."organization" VALUES ('org_9f2', 'Globex', 'globex');
INSERT INTO public."member" VALUES ('m1', 'org_9f2', 'regress_owner', 'admin,owner'),
                                   ('m2', 'org_9f2', 'regress_member', 'member'),
                                   ('m3', 'org_9f2', 'regress_stranger', 'auditor');
ALTER DATABASE :"DBNAME" SET apikey.org_exists_function = 'app.org_exists';
ALTER DATABASE :"DBNAME" SET apikey.member_roles_function = 'app.member_roles';
\c
-- A trusted caller creates a key for the application's organization, with no user.
SELECT key AS byo_key FROM apikey.create_api_key(org_id => 'org_9f2', name => 'globex-ci') \gset
SELECT valid, code, org_id, user_id FROM apikey.verify_api_key(:'byo_key');
SELECT key FROM apikey.create_api_key(org_id => 'org_nope');
\echo :LAST_ERROR_SQLSTATE
-- The built-in tables are not consulted, and writing them is refused.
SELECT apikey.create_organization('org_9f2');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.add_member('acme', 'someone');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.remove_member('acme', 'regress_admin');
\echo :LAST_ERROR_SQLSTATE
-- 'admin,owner': both roles count.
SET ROLE regress_owner;
SELECT key_id AS owner_made, org_id FROM apikey.create_api_key(org_id => 'org_9f2', name => 'owner-made') \gset
SELECT org_id, created_by_identity FROM apikey.get_api_key(:'owner_made');
SELECT count(*) > 0 AS owner_reads_audit FROM apikey.list_audit_events(org_id => 'org_9f2');
RESET ROLE;
SET ROLE regress_member;
SELECT key FROM apikey.create_api_key(org_id => 'org_9f2');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- The admin of acme in the built-in tables is nobody here.
SET ROLE regress_admin;
SELECT key FROM apikey.create_api_key(org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- A custom role with custom actions: 'auditor' may read, and may 'export' (an action of
-- the application's own, which pg_apikey stores and lists but does not use).
SELECT apikey.set_role_action('auditor', 'read', true);
SELECT apikey.set_role_action('auditor', 'export', true);
SELECT role, action, allowed FROM apikey.list_role_actions() WHERE role = 'auditor' ORDER BY action;
SET ROLE regress_stranger;
SELECT name FROM apikey.list_api_keys(org_id => 'org_9f2') ORDER BY name;
SELECT key FROM apikey.create_api_key(org_id => 'org_9f2');
\echo :LAST_ERROR_SQLSTATE
-- An ordinary role cannot point the setting at its own function.
SET apikey.member_roles_function = 'public.always_owner';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The function must belong to a trusted role and pin its search_path.
CREATE FUNCTION app.loose_roles(org_id text, user_id text) RETURNS text[]
    LANGUAGE sql STABLE AS $$ SELECT ARRAY['owner'] $$;
SET apikey.member_roles_function = 'app.loose_roles';
SET ROLE regress_member;
SELECT key FROM apikey.create_api_key(org_id => 'org_9f2');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
ALTER FUNCTION app.loose_roles(text, text) SET search_path = '';
ALTER FUNCTION app.loose_roles(text, text) OWNER TO regress_member;
SET ROLE regress_member;
SELECT key FROM apikey.create_api_key(org_id => 'org_9f2');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- ... and return what its kind returns.
CREATE FUNCTION app.counted_roles(org_id text, user_id text) RETURNS integer
    LANGUAGE sql STABLE SET search_path = '' AS $$ SELECT 1 $$;
SET apikey.member_roles_function = 'app.counted_roles';
SET ROLE regress_owner;
SELECT key FROM apikey.create_api_key(org_id => 'org_9f2');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET apikey.member_roles_function = 'member_roles';
SET ROLE regress_owner;
SELECT key FROM apikey.create_api_key(org_id => 'org_9f2');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- Only one of the two set: refused until both or neither are.
SET apikey.member_roles_function = '';
SET ROLE regress_owner;
SELECT key FROM apikey.create_api_key(org_id => 'org_9f2');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET apikey.member_roles_function;

-- Switching back to the built-in tables.
ALTER DATABASE :"DBNAME" RESET apikey.org_exists_function;
ALTER DATABASE :"DBNAME" RESET apikey.member_roles_function;
\c
SET ROLE regress_admin;
SELECT org_id FROM apikey.create_api_key(org_id => 'acme', name => 'built-in again');
RESET ROLE;
SET ROLE regress_owner;
SELECT key FROM apikey.create_api_key(org_id => 'org_9f2');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP SCHEMA app CASCADE;
DROP TABLE public."member", public."organization";
DROP ROLE regress_authenticator, regress_authenticated;
