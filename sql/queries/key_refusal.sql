-- Why a key with a quota or rate limit ($1) was refused at the instant $2 (the same rules
-- as key_consume.sql): rate-limited (and when its window ends), or what is left of the
-- quota (and when the next refill comes). No row: the key is gone or revoked.
SELECT k.rate_limit_max IS NOT NULL
       AND NOT (k.rate_window_reset_at IS NULL OR k.rate_window_reset_at <= $2)
       AND k.rate_window_count >= k.rate_limit_max AS rate_limited,
       k.rate_window_reset_at - $2 AS window_ends_in,
       CASE WHEN k.refill_interval IS NOT NULL
                 AND coalesce(k.last_refill_at, k.created_at) + k.refill_interval <= $2
            THEN k.refill_amount
            ELSE k.remaining END AS remaining,
       coalesce(k.last_refill_at, k.created_at) + k.refill_interval - $2 AS refill_in
  FROM apikey.keys k
 WHERE k.id = $1 AND k.revoked_at IS NULL;
