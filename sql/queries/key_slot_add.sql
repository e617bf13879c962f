-- Add one budget slot to key $1, whose row this transaction holds locked (so no other
-- slot of the key is added or removed meanwhile): the lowest number below $2 that is
-- free, holding quota share $3 and window allowances $4 (counting cost where $5),
-- current until $6, handed out at $7. No row: the key has $2 slots already.
INSERT INTO apikey.key_slots AS s (key_id, slot, quota, windows, by_cost, due_at, used_at)
SELECT $1, g, $3, $4, $5, $6, $7
  FROM generate_series(0, $2 - 1) AS g
 WHERE NOT EXISTS (SELECT FROM apikey.key_slots o WHERE o.key_id = $1 AND o.slot = g)
 ORDER BY g
 LIMIT 1
RETURNING s.slot
