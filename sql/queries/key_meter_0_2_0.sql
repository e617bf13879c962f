-- The quota and rate limits of key $1 as the call at $2 finds them: what is left, when
-- the refill comes, each window's count and end, and when a default window that starts
-- now would end (the named limits' are worked out from their list in
-- src/storage/metering.rs), and the settings verify decided on before it locked the row
-- (enabled, expires_at, permissions: another transaction may have changed them while the
-- lock was awaited). No row: the key is gone or revoked.
-- For a database still at 0.2.0 (no budget slots); key_meter.sql is the current one. The
-- locking variant appends FOR NO KEY UPDATE (stmt!(locked …), src/storage/metering.rs).
SELECT k.enabled, k.expires_at, k.permissions, k.remaining, k.refill_amount,
       coalesce(k.last_refill_at, k.created_at) + k.refill_interval AS refill_at,
       k.rate_limit_max, k.rate_window_count, k.rate_window_reset_at,
       $2 + k.rate_limit_window AS default_next_reset,
       k.rate_limits, k.rate_counts, k.rate_resets
  FROM apikey.keys k
 WHERE k.id = $1 AND k.revoked_at IS NULL
