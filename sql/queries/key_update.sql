-- A key's new settings ($2..$12 in the order of src/key_settings.rs), enabled ($13); with
-- $14 the refill period starts over at $15 (the next refill is the first period end, from
-- the anchor, after it). A changed rate_limits list starts its windows over.
UPDATE apikey.keys k
   SET name = $2, expires_at = $3, permissions = $4, metadata = $5, remaining = $6,
       refill_amount = $7, refill_interval = $8, rate_limit_max = $9, rate_limit_window = $10,
       rate_limits = $11, refill_anchor = $12,
       rate_counts = CASE WHEN k.rate_limits IS NOT DISTINCT FROM $11 THEN k.rate_counts END,
       rate_resets = CASE WHEN k.rate_limits IS NOT DISTINCT FROM $11 THEN k.rate_resets END,
       enabled = $13,
       last_refill_at = CASE WHEN $14 THEN $15 ELSE k.last_refill_at END,
       updated_at = $15
 WHERE k.id = $1
RETURNING k.org_id, k.user_id, k.revoked_at IS NOT NULL AS revoked,
       apikey.key_info_of(k, apikey.key_held(k.id)) AS info;
