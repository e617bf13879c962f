-- Add one budget slot to owner ($1 kind, $2 id), whose limits' row this transaction
-- holds locked (so no other slot of the owner is added or removed meanwhile): the
-- lowest number below $3 that is free, holding quota share $4 and window allowances $5
-- (counting cost where $6), current until $7, handed out at $8. No row: the owner has
-- $3 slots already.
INSERT INTO apikey.owner_slots AS s (owner_kind, owner_id, slot, quota, windows, by_cost, due_at, used_at)
SELECT $1, $2, g, $4, $5, $6, $7, $8
  FROM generate_series(0, $3 - 1) AS g
 WHERE NOT EXISTS (SELECT FROM apikey.owner_slots o
                    WHERE o.owner_kind = $1 AND o.owner_id = $2 AND o.slot = g)
 ORDER BY g
 LIMIT 1
RETURNING s.slot
