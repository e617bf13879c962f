-- The quota and rate limits of key $1 as the call at $2 finds them: what is left in the
-- key's row, when the refill comes, each window's count and end, and when a default
-- window that starts now would end (the named limits' are worked out from their list in
-- src/storage/metering.rs); what its budget slots hold (slots_quota, slots_windows: the
-- sums over its slots, by window); and the settings verify decided on before it locked
-- the row (enabled, expires_at, permissions: another transaction may have changed them
-- while the lock was awaited). No row: the key is gone or revoked.
-- The locking variants append FOR NO KEY UPDATE, or FOR NO KEY UPDATE SKIP LOCKED
-- (stmt!(locked …), stmt!(skip_locked …), src/storage/metering.rs); neither locks the
-- slots, whose sums are read as committed.
SELECT k.enabled, k.expires_at, k.permissions, k.remaining, k.refill_amount,
       apikey.refill_period_end(coalesce(k.refill_anchor, k.last_refill_at, k.created_at), k.refill_interval,
                                coalesce(k.last_refill_at, k.created_at), 1) AS refill_at,
       k.rate_limit_max, k.rate_window_count, k.rate_window_reset_at,
       $2 + k.rate_limit_window AS default_next_reset,
       k.rate_limits, k.rate_counts, k.rate_resets,
       (SELECT sum(s.quota)::bigint FROM apikey.key_slots s WHERE s.key_id = k.id) AS slots_quota,
       (SELECT array_agg(t.w ORDER BY t.i)
          FROM (SELECT u.i, sum(u.w)::bigint AS w
                  FROM apikey.key_slots s, unnest(s.windows) WITH ORDINALITY AS u (w, i)
                 WHERE s.key_id = k.id
                 GROUP BY u.i) AS t) AS slots_windows
  FROM apikey.keys k
 WHERE k.id = $1 AND k.revoked_at IS NULL
