-- Mark a key revoked; the first revocation's time and role are kept.
UPDATE apikey.keys k
   SET revoked_at = coalesce(k.revoked_at, clock_timestamp()),
       revoked_by_role = coalesce(k.revoked_by_role, $2),
       revoked_by_identity = CASE WHEN k.revoked_at IS NULL THEN $3 ELSE k.revoked_by_identity END
 WHERE k.id = $1
RETURNING k.org_id, k.user_id, k.revoked_at IS NOT NULL AS revoked,
       ROW(k.id, k.org_id, k.user_id, k.name, k.prefix, k.start, k.enabled,
           k.expires_at, k.permissions, k.metadata, k.remaining, k.refill_amount,
           k.refill_interval, k.rate_limit_max, k.rate_limit_window, k.created_at,
           k.last_used_at, k.revoked_at, k.created_by_role, k.created_by_identity,
           k.updated_at, k.rotated_from, k.replaced_by, k.rate_limits, k.imported)::apikey.key_info AS info;
