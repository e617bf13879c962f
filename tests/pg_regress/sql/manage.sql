-- update_api_key, rotate_api_key and the audit trail, from each kind of caller.

SELECT key AS k, key_id AS kid FROM apikey.create_api_key(org_id => 'acme', name => 'managed',
    expires_at => now() + interval '30 days', metadata => '{"env": "prod"}') \gset

-- Only the arguments given change.
SELECT name, metadata, expires_at IS NOT NULL AS has_expiry, enabled, updated_at IS NOT NULL AS updated
  FROM apikey.update_api_key(:'kid', name => 'renamed');
-- Disabling applies to the very next verify; so does enabling.
SELECT enabled FROM apikey.update_api_key(:'kid', enabled => false);
SELECT code FROM apikey.verify_api_key(:'k');
SELECT enabled FROM apikey.update_api_key(:'kid', enabled => true);
SELECT code FROM apikey.verify_api_key(:'k');
-- Clearing an expiry (or any other field) is done by naming it in clear.
SELECT expires_at FROM apikey.update_api_key(:'kid', clear => '{expires_at}');
SELECT name, expires_at FROM apikey.update_api_key(:'kid', clear => '{name}');
SELECT apikey.update_api_key(:'kid', clear => '{digest}');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.update_api_key(:'kid', name => 'x', clear => '{name}');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.update_api_key(:'kid', expires_at => now() - interval '1 day');
\echo :LAST_ERROR_SQLSTATE
-- Policy fields: trusted callers only; pairs are checked on the key's resulting settings.
SELECT permissions, remaining FROM apikey.update_api_key(:'kid', permissions => '{"files": ["read"]}', remaining => 10);
SELECT code, remaining FROM apikey.verify_api_key(:'k', '{"files": ["read"]}');
SELECT apikey.update_api_key(:'kid', refill_amount => 10);
\echo :LAST_ERROR_SQLSTATE
SELECT refill_amount, refill_interval FROM apikey.update_api_key(:'kid', refill_amount => 10, refill_interval => '1 day');
SELECT refill_amount, refill_interval FROM apikey.update_api_key(:'kid', clear => '{refill_amount,refill_interval}');

-- Ordinary callers: the admin may update (not policy fields); members and strangers see nothing.
SET ROLE regress_admin;
SELECT name FROM apikey.update_api_key(:'kid', name => 'admin-renamed', metadata => '{"env": "staging"}');
SELECT apikey.update_api_key(:'kid', remaining => 1000);
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.update_api_key(:'kid', clear => '{remaining}');
\echo :LAST_ERROR_SQLSTATE
-- refill_anchor (0.3.0) is a policy field too.
SELECT apikey.update_api_key(:'kid', refill_anchor => '2027-01-01 00:00+00');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_member;
SELECT apikey.update_api_key(:'kid', name => 'member-renamed');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_stranger;
SELECT apikey.update_api_key(:'kid', name => 'stranger-renamed');
\echo :LAST_ERROR_SQLSTATE
SELECT key_id AS sk FROM apikey.create_api_key(name => 'stranger-own') \gset
SELECT name FROM apikey.update_api_key(:'sk', name => 'stranger-own-renamed');
RESET ROLE;

-- Rotation: a new key with the same owner and settings; the old one stops after grace.
SELECT key AS k2, key_id AS kid2, name, org_id, permissions, remaining, metadata
  FROM apikey.rotate_api_key(:'kid') \gset
SELECT :'name' AS name, :'org_id' AS org_id, :'permissions' AS permissions, :'remaining' AS remaining, :'k2' <> :'k' AS new_secret;
SELECT code FROM apikey.verify_api_key(:'k');
SELECT code, name FROM apikey.verify_api_key(:'k2', '{"files": ["read"]}');
SELECT rotated_from = :'kid' AS linked_back FROM apikey.get_api_key(:'kid2');
SELECT replaced_by = :'kid2' AS linked_forward FROM apikey.get_api_key(:'kid');
SELECT apikey.rotate_api_key(:'kid');
\echo :LAST_ERROR_SQLSTATE
-- With a grace period both keys verify until it ends.
SELECT key AS k3, key_id AS kid3 FROM apikey.rotate_api_key(:'kid2', grace => '1 hour') \gset
SELECT (SELECT code FROM apikey.verify_api_key(:'k2')) AS old_key, (SELECT code FROM apikey.verify_api_key(:'k3')) AS new_key;
SELECT apikey.rotate_api_key(:'kid3', grace => '-1 hour');
\echo :LAST_ERROR_SQLSTATE
-- The admin may rotate; the member may not see the key.
SET ROLE regress_admin;
SELECT key AS k4, key_id AS kid4, created_at IS NOT NULL AS made FROM apikey.rotate_api_key(:'kid3') \gset
SELECT :'made' AS admin_rotated;
RESET ROLE;
SET ROLE regress_member;
SELECT apikey.rotate_api_key(:'kid4');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- Revoked keys cannot be changed or rotated.
SELECT revoked_at IS NOT NULL AS revoked FROM apikey.revoke_api_key(:'kid4');
SELECT apikey.update_api_key(:'kid4', name => 'too late');
\echo :LAST_ERROR_SQLSTATE
SELECT apikey.rotate_api_key(:'kid4');
\echo :LAST_ERROR_SQLSTATE

-- The audit trail: every management action, with who and what; never a secret.
SELECT action, subject, actor_role, actor_identity
  FROM apikey.list_audit_events(org_id => 'acme')
 WHERE action IN ('org_created', 'member_added', 'member_removed') ORDER BY id LIMIT 6;
SELECT action, actor_role, details -> 'changes' AS changes, details -> 'cleared' AS cleared
  FROM apikey.list_audit_events(org_id => 'acme')
 WHERE key_id = :'kid' AND action = 'key_updated' ORDER BY id;
SELECT action, count(*) FROM apikey.list_audit_events()
 WHERE key_id IN (:'kid', :'kid2', :'kid3', :'kid4') GROUP BY action ORDER BY action;
SELECT count(*) AS rows_with_a_secret FROM apikey.list_audit_events()
 WHERE strpos(details::text, substr(:'k2', 4, 43)) > 0 OR details ? 'digest' OR details -> 'key' ? 'digest';
-- Every kind of action so far in this database's story is recorded.
SELECT action, count(*) > 0 AS recorded FROM apikey.list_audit_events() GROUP BY action ORDER BY action;
-- Verify writes no audit rows.
SELECT count(*) AS before FROM apikey.list_audit_events() \gset
SELECT code FROM apikey.verify_api_key(:'k2');
SELECT count(*) - :before AS added_by_verify FROM apikey.list_audit_events();
-- Who may read it: trusted callers, and an organization's owners for that organization.
SET ROLE regress_owner;
SELECT count(*) > 0 AS owner_reads_acme FROM apikey.list_audit_events(org_id => 'acme');
SELECT count(*) FROM apikey.list_audit_events();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_admin;
SELECT count(*) FROM apikey.list_audit_events(org_id => 'acme');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_deployer;
SELECT count(*) > 0 AS service_reads_all FROM apikey.list_audit_events();
RESET ROLE;
