-- key_meter_spend.sql for a database still at 0.1.0 (see key_meter_0_1_0.sql): the same
-- parameters; $6 and $7, the named limits' state, are always NULL there.
-- Remove with the last release that updates from 0.1.0.
UPDATE apikey.keys k
   SET remaining = $2,
       last_refill_at = CASE WHEN $3 THEN $8 ELSE k.last_refill_at END,
       rate_window_count = coalesce($4, k.rate_window_count),
       rate_window_reset_at = CASE WHEN $4 IS NULL THEN k.rate_window_reset_at ELSE $5 END,
       last_used_at = $8
 WHERE k.id = $1 AND $6::bigint[] IS NULL AND $7::timestamptz[] IS NULL
