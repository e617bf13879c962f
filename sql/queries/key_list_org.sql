-- An organization's keys ($1), optionally only those recorded with user $2.
SELECT k.org_id, k.user_id, k.revoked_at IS NOT NULL AS revoked,
       ROW(k.id, k.org_id, k.user_id, k.name, k.prefix, k.start, k.enabled,
           k.expires_at, k.permissions, k.metadata, k.remaining, k.refill_amount,
           k.refill_interval, k.rate_limit_max, k.rate_limit_window, k.created_at,
           k.last_used_at, k.revoked_at, k.created_by_role, k.created_by_identity,
           k.updated_at, k.rotated_from, k.replaced_by, k.rate_limits, k.imported)::apikey.key_info AS info
  FROM apikey.keys k
 WHERE k.org_id = $1 AND ($2::text IS NULL OR k.user_id = $2)
 ORDER BY k.created_at, k.id;
