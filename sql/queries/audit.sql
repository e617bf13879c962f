-- A management action that is not about one key's stored row.
INSERT INTO apikey.audit_log (action, org_id, key_id, subject, actor_role, actor_identity, details)
VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, '{}'::jsonb));
