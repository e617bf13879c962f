-- Delete expired keys — all of them when $1, else user $2's own and those of the
-- organizations $3 — and record each deletion.
WITH gone AS (
    DELETE FROM apikey.keys k
     WHERE k.expires_at <= clock_timestamp()
       AND ($1 OR (k.org_id IS NULL AND k.user_id = $2) OR k.org_id = ANY ($3))
    RETURNING k.id, k.org_id,
       ROW(k.id, k.org_id, k.user_id, k.name, k.prefix, k.start, k.enabled,
           k.expires_at, k.permissions, k.metadata, k.remaining, k.refill_amount,
           k.refill_interval, k.rate_limit_max, k.rate_limit_window, k.created_at,
           k.last_used_at, k.revoked_at, k.created_by_role, k.created_by_identity,
           k.updated_at, k.rotated_from, k.replaced_by, k.rate_limits, k.imported)::apikey.key_info AS info
)
INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details)
SELECT 'key_deleted', g.org_id, g.id, $4, $5,
       jsonb_build_object('reason', 'expired', 'key', to_jsonb(g.info))
  FROM gone g;
