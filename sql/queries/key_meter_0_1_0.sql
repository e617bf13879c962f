-- key_meter.sql for a database still at 0.1.0 (the new library installed, ALTER EXTENSION
-- pg_apikey UPDATE not yet run): its keys have no named rate limits. Same columns.
-- Remove with the last release that updates from 0.1.0.
SELECT k.enabled, k.expires_at, k.permissions, k.remaining, k.refill_amount,
       coalesce(k.last_refill_at, k.created_at) + k.refill_interval AS refill_at,
       k.rate_limit_max, k.rate_window_count, k.rate_window_reset_at,
       $2 + k.rate_limit_window AS default_next_reset,
       NULL::jsonb AS rate_limits, NULL::bigint[] AS rate_counts,
       NULL::timestamptz[] AS rate_resets
  FROM apikey.keys k
 WHERE k.id = $1 AND k.revoked_at IS NULL
