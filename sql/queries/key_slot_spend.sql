-- Spend a call of cost $3 at $2 from one budget slot of key $1, without waiting:
-- the first, in this backend's order ($4 shuffles the slots per backend, so that
-- concurrent verifies start at different slots), that no other transaction holds, whose
-- share is still current (due_at) and holds enough for the call: a quota share of at
-- least $3, and in each window at least what the call counts there ($3 in a cost
-- window, 1 in a requests window). No row: no such slot; the caller then takes the whole
-- budget, waiting. Returns the limits as key_meter.sql reads them (as committed: the
-- row is not locked) and what the slots hold after this call.
UPDATE apikey.key_slots s
   SET quota = s.quota - $3,
       windows = ARRAY(SELECT u.w - CASE WHEN u.c THEN $3 ELSE 1 END
                         FROM unnest(s.windows, s.by_cost) WITH ORDINALITY AS u (w, c, i)
                        ORDER BY u.i),
       used_at = $2
  FROM apikey.keys k
 WHERE s.key_id = $1 AND k.id = s.key_id AND k.revoked_at IS NULL
   AND s.slot = (SELECT c.slot
                   FROM apikey.key_slots c
                  WHERE c.key_id = $1
                    AND (c.due_at IS NULL OR c.due_at > $2)
                    AND (c.quota IS NULL OR c.quota >= $3)
                    AND NOT EXISTS (SELECT FROM unnest(c.windows, c.by_cost) AS u (w, b)
                                     WHERE u.w < CASE WHEN u.b THEN $3 ELSE 1 END)
                  ORDER BY hashint4(c.slot # $4)
                  LIMIT 1
                    FOR NO KEY UPDATE SKIP LOCKED)
RETURNING k.enabled, k.expires_at, k.permissions, k.remaining, k.refill_amount,
       apikey.refill_period_end(coalesce(k.refill_anchor, k.last_refill_at, k.created_at), k.refill_interval,
                                coalesce(k.last_refill_at, k.created_at), 1) AS refill_at,
       k.rate_limit_max, k.rate_window_count, k.rate_window_reset_at,
       $2 + k.rate_limit_window AS default_next_reset,
       k.rate_limits, k.rate_counts, k.rate_resets,
       s.slot,
       (SELECT sum(x.q)::bigint
          FROM (SELECT o.quota FROM apikey.key_slots o WHERE o.key_id = s.key_id AND o.slot <> s.slot
                UNION ALL SELECT s.quota) AS x (q)) AS slots_quota,
       (SELECT array_agg(t.w ORDER BY t.i)
          FROM (SELECT u.i, sum(u.w)::bigint AS w
                  FROM (SELECT o.windows FROM apikey.key_slots o WHERE o.key_id = s.key_id AND o.slot <> s.slot
                        UNION ALL SELECT s.windows) AS x (ws),
                       unnest(x.ws) WITH ORDINALITY AS u (w, i)
                 GROUP BY u.i) AS t) AS slots_windows
