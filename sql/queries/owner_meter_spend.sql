-- Record an admitted call against the limits of owner ($1 kind, $2 id) at $7 (the row is
-- locked by owner_meter.sql): what is left $3 (with $4 the call applied a due refill), the
-- named limits' counts $5 and ends $6.
UPDATE apikey.owner_limits o
   SET remaining = $3,
       last_refill_at = CASE WHEN $4 THEN apikey.refill_period_end(
                                coalesce(o.refill_anchor, o.last_refill_at, o.set_at), o.refill_interval, $7, 0)
                             ELSE o.last_refill_at END,
       rate_counts = $5,
       rate_resets = $6
 WHERE o.owner_kind = $1 AND o.owner_id = $2
