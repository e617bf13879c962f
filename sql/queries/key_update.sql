-- A key's new settings ($2..$10 in the order of src/key_settings.rs), enabled ($11); with
-- $12 the refill period starts over at $13.
UPDATE apikey.keys k
   SET name = $2, expires_at = $3, permissions = $4, metadata = $5, remaining = $6,
       refill_amount = $7, refill_interval = $8, rate_limit_max = $9, rate_limit_window = $10,
       enabled = $11,
       last_refill_at = CASE WHEN $12 THEN $13 ELSE k.last_refill_at END,
       updated_at = $13
 WHERE k.id = $1
RETURNING k.org_id, k.user_id, k.revoked_at IS NOT NULL AS revoked,
       ROW(k.id, k.org_id, k.user_id, k.name, k.prefix, k.start, k.enabled,
           k.expires_at, k.permissions, k.metadata, k.remaining, k.refill_amount,
           k.refill_interval, k.rate_limit_max, k.rate_limit_window, k.created_at,
           k.last_used_at, k.revoked_at, k.created_by_role, k.created_by_identity,
           k.updated_at, k.rotated_from, k.replaced_by)::apikey.key_info AS info;
