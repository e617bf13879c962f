-- What the management functions and tables hold: the same before and after an upgrade.
-- (0.2.0 added columns to key_info; the 0.1.0 ones are listed.)
\pset footer off
\pset null '(null)'
-- Every key's public fields as the owner reads them (a superuser sees all).
SELECT key_id, org_id, user_id, name, prefix, start, enabled, expires_at, permissions, metadata,
       remaining, refill_amount, refill_interval, rate_limit_max, rate_limit_window, created_at,
       last_used_at, revoked_at, created_by_role, created_by_identity, updated_at, rotated_from,
       replaced_by
  FROM apikey.list_api_keys() ORDER BY created_at, key_id;
-- Organizations, members, customised role actions and the audit trail.
SELECT id, name, created_at, created_by_role FROM apikey.organizations ORDER BY id;
SELECT org_id, user_id, role FROM apikey.members ORDER BY org_id, user_id;
SELECT * FROM apikey.list_role_actions() ORDER BY 1, 2;
SELECT * FROM apikey.list_audit_events() ORDER BY id;
SELECT d.datname, s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
 WHERE d.datname = current_database();
