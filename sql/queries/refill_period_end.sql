-- The end of the anchored refill period that $3 falls in, moved by $4 periods (anchor $1,
-- period $2).
SELECT apikey.refill_period_end($1, $2, $3, $4) AS at
