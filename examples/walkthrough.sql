-- pg_apikey: the provisioning story, step by step.
-- Run by ./scripts/demo.sh against a throwaway cluster. Each step says who acts.
-- Any error stops it, but those a step expects (each between ON_ERROR_STOP 0 and 1, with
-- its SQLSTATE printed after it). The test command runs it and compares what it prints
-- (tests/walkthrough/).
\set ON_ERROR_STOP 1
\pset footer off
\echo
\echo '== 1. A DBA installs the extension. It creates schema apikey and the NOLOGIN role apikey_service.'
CREATE EXTENSION pg_apikey;
SELECT rolname AS service_role, rolcanlogin FROM pg_roles WHERE rolname = 'apikey_service';

\echo
\echo '== 2. Login roles: a backend (service role member), an admin, a member, a stranger.'
CREATE ROLE backend LOGIN IN ROLE apikey_service;
CREATE ROLE alice LOGIN;   -- admin of acme
CREATE ROLE bob LOGIN;     -- plain member of acme
CREATE ROLE mallory LOGIN; -- not a member
SELECT rolname, pg_has_role(rolname, 'apikey_service', 'MEMBER') AS trusted
  FROM pg_roles WHERE rolname IN ('backend', 'alice', 'bob', 'mallory') ORDER BY rolname;

\echo
\echo '== 3. The backend provisions an organization and its members (plain SQL, e.g. in a migration).'
\c - backend
SELECT id, name FROM apikey.create_organization('acme', 'Acme Inc.');
SELECT org_id, user_id, role FROM apikey.add_member('acme', 'alice', 'admin');
SELECT org_id, user_id, role FROM apikey.add_member('acme', 'bob', 'member');

\echo
\echo '== 4. The backend creates an organization key for CI: org_id alone, no user, with permissions.'
SELECT key AS ci_key, key_id, start, org_id, user_id IS NULL AS no_user, permissions
  FROM apikey.create_api_key(org_id => 'acme', name => 'ci-deploy', prefix => 'dp_live_',
                             permissions => '{"mesa": ["admin"]}') \gset
\echo 'key shown once:' :ci_key
\echo 'start (what dashboards show):' :start ' org_id:' :org_id ' no user:' :no_user

\echo
\echo '== 5. alice (admin) creates an org key as herself: allowed. She may not set permissions.'
\c - alice
SELECT start AS alice_start, org_id AS alice_org
  FROM apikey.create_api_key(org_id => 'acme', name => 'alice-laptop') \gset
\echo 'alice made a key for' :alice_org 'that starts' :alice_start
\set ON_ERROR_STOP 0
SELECT key FROM apikey.create_api_key(org_id => 'acme', permissions => '{"mesa": ["admin"]}');
\set ON_ERROR_STOP 1
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE

\echo
\echo '== 6. bob (member) and mallory (stranger) are refused.'
\c - bob
\set ON_ERROR_STOP 0
SELECT key FROM apikey.create_api_key(org_id => 'acme');
\set ON_ERROR_STOP 1
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
\c - mallory
\set ON_ERROR_STOP 0
SELECT key FROM apikey.create_api_key(org_id => 'acme');
\set ON_ERROR_STOP 1
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
\echo 'mallory may still make a key of her own:'
SELECT org_id, user_id, name FROM apikey.create_api_key(name => 'personal');

\echo
\echo '== 7. An API server verifies keys on each request: one round trip, one row.'
SELECT valid, code, org_id, user_id, name, permissions FROM apikey.verify_api_key(:'ci_key');
SELECT valid, code FROM apikey.verify_api_key(:'ci_key', '{"mesa": ["admin"]}');
SELECT valid, code FROM apikey.verify_api_key(:'ci_key', '{"billing": ["read"]}');
SELECT valid, code FROM apikey.verify_api_key('dp_live_not-a-real-key');
SELECT valid, code FROM apikey.verify_api_key(NULL);

\echo
\echo '== 8. The keys of acme, as alice sees them (never a secret or digest); mallory cannot list them.'
\c - alice
SELECT name, start, user_id, created_by_role, enabled FROM apikey.list_api_keys(org_id => 'acme') ORDER BY created_at;
\c - mallory
\set ON_ERROR_STOP 0
SELECT count(*) FROM apikey.list_api_keys(org_id => 'acme');
\set ON_ERROR_STOP 1
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE

\echo
\echo '== 9. alice revokes the CI key: verify answers KEY_NOT_FOUND from then on.'
\c - alice
SELECT key_id AS ci_id FROM apikey.list_api_keys(org_id => 'acme') WHERE name = 'ci-deploy' \gset
SELECT name, revoked_at IS NOT NULL AS revoked FROM apikey.revoke_api_key(:'ci_id');
SELECT valid, code FROM apikey.verify_api_key(:'ci_key');

\echo
\echo '== 10. What is stored: digest, prefix and start, never the key.'
\c - postgres
SELECT name, prefix, start, encode(digest, 'hex') AS sha256_digest FROM apikey.keys ORDER BY created_at;
