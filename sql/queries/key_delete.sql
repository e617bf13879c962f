-- Delete a key and record it, in one statement.
WITH gone AS (
    DELETE FROM apikey.keys k WHERE k.id = $1
    RETURNING k.id, k.org_id,
       ROW(k.id, k.org_id, k.user_id, k.name, k.prefix, k.start, k.enabled,
           k.expires_at, k.permissions, k.metadata, k.remaining, k.refill_amount,
           k.refill_interval, k.rate_limit_max, k.rate_limit_window, k.created_at,
           k.last_used_at, k.revoked_at, k.created_by_role, k.created_by_identity,
           k.updated_at, k.rotated_from, k.replaced_by, k.rate_limits, k.imported)::apikey.key_info AS info
)
INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details)
SELECT 'key_deleted', g.org_id, g.id, $2, $3, jsonb_build_object('key', to_jsonb(g.info))
  FROM gone g;
