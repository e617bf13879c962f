-- The limits shared by the keys of owner ($1 kind, $2 id) as the call at $3 finds them,
-- in the shape of key_meter.sql, with what the owner's budget slots hold. No row: the
-- owner has no limits. The locking variants append FOR NO KEY UPDATE, or FOR NO KEY
-- UPDATE SKIP LOCKED (stmt!(locked …), stmt!(skip_locked …), src/storage/metering.rs).
SELECT o.remaining, o.refill_amount, o.refill_interval,
       apikey.refill_period_end(coalesce(o.refill_anchor, o.last_refill_at, o.set_at), o.refill_interval,
                                coalesce(o.last_refill_at, o.set_at), 1) AS refill_at,
       o.rate_limits, o.rate_counts, o.rate_resets, o.set_at, o.refill_anchor,
       (SELECT sum(s.quota)::bigint FROM apikey.owner_slots s
         WHERE s.owner_kind = o.owner_kind AND s.owner_id = o.owner_id) AS slots_quota,
       (SELECT array_agg(t.w ORDER BY t.i)
          FROM (SELECT u.i, sum(u.w)::bigint AS w
                  FROM apikey.owner_slots s, unnest(s.windows) WITH ORDINALITY AS u (w, i)
                 WHERE s.owner_kind = o.owner_kind AND s.owner_id = o.owner_id
                 GROUP BY u.i) AS t) AS slots_windows
  FROM apikey.owner_limits o
 WHERE o.owner_kind = $1 AND o.owner_id = $2
