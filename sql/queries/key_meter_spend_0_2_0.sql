-- 0.2.0's schema (a database not yet updated: no refill anchors): a refill applied at $8
-- starts the next period then.
-- Set the counts of key $1 at $8 (its row is locked by key_meter.sql): what is left $2
-- (with $3 the call applied a due refill), the default limit's count $4 and end $5 (NULL
-- $4: the key has no such limit), the named limits' counts $6 and ends $7; with $9 it was
-- used then (an admitted call; not when budget slots are folded back into the row).
UPDATE apikey.keys k
   SET remaining = $2,
       last_refill_at = CASE WHEN $3 THEN $8 ELSE k.last_refill_at END,
       rate_window_count = coalesce($4, k.rate_window_count),
       rate_window_reset_at = CASE WHEN $4 IS NULL THEN k.rate_window_reset_at ELSE $5 END,
       rate_counts = $6,
       rate_resets = $7,
       last_used_at = CASE WHEN $9 THEN $8 ELSE k.last_used_at END
 WHERE k.id = $1
