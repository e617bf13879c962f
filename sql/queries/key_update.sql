-- A key's new settings ($2..$11 in the order of src/key_settings.rs), enabled ($12); with
-- $13 the refill period starts over at $14. A changed rate_limits list starts its windows
-- over.
UPDATE apikey.keys k
   SET name = $2, expires_at = $3, permissions = $4, metadata = $5, remaining = $6,
       refill_amount = $7, refill_interval = $8, rate_limit_max = $9, rate_limit_window = $10,
       rate_limits = $11,
       rate_counts = CASE WHEN k.rate_limits IS NOT DISTINCT FROM $11 THEN k.rate_counts END,
       rate_resets = CASE WHEN k.rate_limits IS NOT DISTINCT FROM $11 THEN k.rate_resets END,
       enabled = $12,
       last_refill_at = CASE WHEN $13 THEN $14 ELSE k.last_refill_at END,
       updated_at = $14
 WHERE k.id = $1
RETURNING k.org_id, k.user_id, k.revoked_at IS NOT NULL AS revoked,
       apikey.key_info_of(k, apikey.key_held(k.id)) AS info;
