-- Spend one use of a key with a quota or rate limit ($1) at the instant $2, atomically:
-- refill if one is due, start a new rate window if the last one ended, count the request
-- and spend the use, all in one UPDATE that matches only when both the rate limit and the
-- quota allow it. Concurrent verifies of the same key queue on its row lock and decide
-- again on the row they then see, so the counts are exact. A refused request writes
-- nothing. Returns what is left (NULL: no quota); no row when refused.
--
--   refill due:        k.refill_interval IS NOT NULL
--                      AND coalesce(k.last_refill_at, k.created_at) + k.refill_interval <= $2
--   window over:       k.rate_window_reset_at IS NULL OR k.rate_window_reset_at <= $2
UPDATE apikey.keys k
   SET remaining =
           CASE WHEN k.remaining IS NULL THEN NULL
                WHEN k.refill_interval IS NOT NULL
                     AND coalesce(k.last_refill_at, k.created_at) + k.refill_interval <= $2
                THEN k.refill_amount - 1
                ELSE k.remaining - 1 END,
       last_refill_at =
           CASE WHEN k.refill_interval IS NOT NULL
                     AND coalesce(k.last_refill_at, k.created_at) + k.refill_interval <= $2
                THEN $2
                ELSE k.last_refill_at END,
       rate_window_count =
           CASE WHEN k.rate_limit_max IS NULL THEN k.rate_window_count
                WHEN k.rate_window_reset_at IS NULL OR k.rate_window_reset_at <= $2 THEN 1
                ELSE k.rate_window_count + 1 END,
       rate_window_reset_at =
           CASE WHEN k.rate_limit_max IS NULL THEN k.rate_window_reset_at
                WHEN k.rate_window_reset_at IS NULL OR k.rate_window_reset_at <= $2
                THEN $2 + k.rate_limit_window
                ELSE k.rate_window_reset_at END,
       last_used_at = $2
 WHERE k.id = $1
   AND k.revoked_at IS NULL
   AND (k.rate_limit_max IS NULL
        OR k.rate_window_reset_at IS NULL OR k.rate_window_reset_at <= $2
        OR k.rate_window_count < k.rate_limit_max)
   AND (k.remaining IS NULL
        OR CASE WHEN k.refill_interval IS NOT NULL
                     AND coalesce(k.last_refill_at, k.created_at) + k.refill_interval <= $2
                THEN k.refill_amount
                ELSE k.remaining END > 0)
RETURNING k.remaining;
