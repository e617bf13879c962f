-- Reading and managing keys: list, get, revoke, delete, delete_expired.
-- Ordinary callers see their own user keys, and an organization's keys as far as their
-- membership role allows; a key they may not see answers P0002, like a missing one.

SELECT key_id AS org_key_id FROM apikey.create_api_key(org_id => 'acme', name => 'lifecycle-org') \gset
SET ROLE regress_stranger;
SELECT key_id AS own_key_id FROM apikey.create_api_key(name => 'lifecycle-own') \gset
RESET ROLE;

-- list and get never show a secret or a digest.
SELECT attname FROM pg_attribute
 WHERE attrelid = 'apikey.key_info'::regclass AND attnum > 0 ORDER BY attnum;
SELECT count(*) AS org_keys FROM apikey.list_api_keys(org_id => 'acme');

-- The stranger sees its own keys only.
SET ROLE regress_stranger;
SELECT name, user_id FROM apikey.list_api_keys() ORDER BY name;
SELECT name FROM apikey.get_api_key(:'own_key_id');
SELECT name FROM apikey.get_api_key(:'org_key_id');
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM apikey.get_api_key('00000000-0000-0000-0000-000000000000');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM apikey.list_api_keys(org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM apikey.list_api_keys(user_id => 'regress_admin');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.revoke_api_key(:'org_key_id');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.delete_api_key(:'org_key_id');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A plain member has no read action: the org's keys are invisible to it.
SET ROLE regress_member;
SELECT name FROM apikey.get_api_key(:'org_key_id');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A custom role that may read but not delete: it sees the key, and is refused (42501)
-- when it tries to revoke or delete it.
SELECT apikey.set_role_action('auditor', 'read', true);
SELECT org_id, user_id, role FROM apikey.add_member('acme', 'regress_member', 'auditor');
SET ROLE regress_member;
SELECT name FROM apikey.get_api_key(:'org_key_id');
SELECT apikey.revoke_api_key(:'org_key_id');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.delete_api_key(:'org_key_id');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.set_role_action('auditor', 'delete', true);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT org_id, user_id, role FROM apikey.add_member('acme', 'regress_member', 'member');

-- The admin may read, revoke and delete the org's keys.
SET ROLE regress_admin;
SELECT name, revoked_at IS NULL AS active FROM apikey.get_api_key(:'org_key_id');
SELECT name, revoked_at IS NOT NULL AS revoked FROM apikey.revoke_api_key(:'org_key_id');
-- Revoking twice keeps the first revocation.
SELECT revoked_at AS first_revoked FROM apikey.get_api_key(:'org_key_id') \gset
SELECT revoked_at = :'first_revoked' AS unchanged FROM apikey.revoke_api_key(:'org_key_id');
SELECT apikey.delete_api_key(:'org_key_id');
SELECT name FROM apikey.get_api_key(:'org_key_id');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The stranger manages its own key.
SET ROLE regress_stranger;
SELECT name, revoked_at IS NOT NULL AS revoked FROM apikey.revoke_api_key(:'own_key_id');
SELECT apikey.delete_api_key(:'own_key_id');
SELECT count(*) FROM apikey.list_api_keys() WHERE key_id = :'own_key_id';
RESET ROLE;

-- Removing a member takes its access away at once.
SELECT key_id AS k4 FROM apikey.create_api_key(org_id => 'acme', name => 'after-removal') \gset
SELECT apikey.remove_member('acme', 'regress_admin');
SET ROLE regress_admin;
SELECT name FROM apikey.get_api_key(:'k4');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT org_id, user_id, role FROM apikey.add_member('acme', 'regress_admin', 'admin');

-- NULL key ids are bad arguments.
SELECT apikey.get_api_key(NULL);
\echo :LAST_ERROR_SQLSTATE

-- delete_expired_api_keys: each caller deletes what it may delete.
SELECT key_id AS exp_org FROM apikey.create_api_key(org_id => 'acme', name => 'will-expire') \gset
SET ROLE regress_stranger;
SELECT key_id AS exp_own FROM apikey.create_api_key(name => 'will-expire-own') \gset
RESET ROLE;
UPDATE apikey.keys SET expires_at = now() - interval '1 day' WHERE id IN (:'exp_org', :'exp_own');
SET ROLE regress_stranger;
SELECT apikey.delete_expired_api_keys() AS stranger_deleted;
RESET ROLE;
SET ROLE regress_admin;
SELECT apikey.delete_expired_api_keys() AS admin_deleted;
SELECT apikey.delete_expired_api_keys() AS nothing_left;
RESET ROLE;
SELECT count(*) AS expired_left FROM apikey.keys WHERE expires_at <= now();
