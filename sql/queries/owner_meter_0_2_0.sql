-- The limits shared by the keys of owner ($1 kind, $2 id) as the call at $3 finds them,
-- in the shape of key_meter.sql. No row: the owner has no limits. The locking variant
-- appends FOR NO KEY UPDATE (stmt!(locked …), src/storage/metering.rs).
SELECT o.remaining, o.refill_amount, o.refill_interval,
       coalesce(o.last_refill_at, o.set_at) + o.refill_interval AS refill_at,
       o.rate_limits, o.rate_counts, o.rate_resets, o.set_at, NULL::timestamptz AS refill_anchor
  FROM apikey.owner_limits o
 WHERE o.owner_kind = $1 AND o.owner_id = $2
