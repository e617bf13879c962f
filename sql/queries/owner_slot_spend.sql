-- Spend a call of cost $4 at $3 from one budget slot of owner ($1 kind, $2 id), without waiting:
-- the first, in this backend's order ($5 shuffles the slots per backend, so that
-- concurrent verifies start at different slots), that no other transaction holds, whose
-- share is still current (due_at) and holds enough for the call: a quota share of at
-- least $4, and in each window at least what the call counts there ($4 in a cost
-- window, 1 in a requests window). No row: no such slot; the caller then takes the whole
-- budget, waiting. Returns the limits as owner_meter.sql reads them (as committed: the
-- row is not locked) and what the slots hold after this call.
UPDATE apikey.owner_slots s
   SET quota = s.quota - $4,
       windows = ARRAY(SELECT u.w - CASE WHEN u.c THEN $4 ELSE 1 END
                         FROM unnest(s.windows, s.by_cost) WITH ORDINALITY AS u (w, c, i)
                        ORDER BY u.i),
       used_at = $3
  FROM apikey.owner_limits l
 WHERE s.owner_kind = $1 AND s.owner_id = $2 AND l.owner_kind = s.owner_kind AND l.owner_id = s.owner_id
   AND s.slot = (SELECT c.slot
                   FROM apikey.owner_slots c
                  WHERE c.owner_kind = $1 AND c.owner_id = $2
                    AND (c.due_at IS NULL OR c.due_at > $3)
                    AND (c.quota IS NULL OR c.quota >= $4)
                    AND NOT EXISTS (SELECT FROM unnest(c.windows, c.by_cost) AS u (w, b)
                                     WHERE u.w < CASE WHEN u.b THEN $4 ELSE 1 END)
                  ORDER BY hashint4(c.slot # $5)
                  LIMIT 1
                    FOR NO KEY UPDATE SKIP LOCKED)
RETURNING l.remaining, l.refill_amount, l.refill_interval,
       apikey.refill_period_end(coalesce(l.refill_anchor, l.last_refill_at, l.set_at), l.refill_interval,
                                coalesce(l.last_refill_at, l.set_at), 1) AS refill_at,
       l.rate_limits, l.rate_counts, l.rate_resets, l.set_at, l.refill_anchor,
       s.slot,
       (SELECT sum(x.q)::bigint
          FROM (SELECT o.quota FROM apikey.owner_slots o WHERE o.owner_kind = s.owner_kind AND o.owner_id = s.owner_id AND o.slot <> s.slot
                UNION ALL SELECT s.quota) AS x (q)) AS slots_quota,
       (SELECT array_agg(t.w ORDER BY t.i)
          FROM (SELECT u.i, sum(u.w)::bigint AS w
                  FROM (SELECT o.windows FROM apikey.owner_slots o WHERE o.owner_kind = s.owner_kind AND o.owner_id = s.owner_id AND o.slot <> s.slot
                        UNION ALL SELECT s.windows) AS x (ws),
                       unnest(x.ws) WITH ORDINALITY AS u (w, i)
                 GROUP BY u.i) AS t) AS slots_windows
