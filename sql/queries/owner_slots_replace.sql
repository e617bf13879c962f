-- Replace the budget slots of owner ($1 kind, $2 id) (locked by owner_slots_lock.sql) by $3 slots,
-- numbered from 0, each with quota share $4, window allowances $5 counting cost
-- where $6, current until $7, handed out at $8. $3 = 0: no slots.
WITH gone AS (
    DELETE FROM apikey.owner_slots s WHERE s.owner_kind = $1 AND s.owner_id = $2 AND s.slot >= $3
)
INSERT INTO apikey.owner_slots AS s (owner_kind, owner_id, slot, quota, windows, by_cost, due_at, used_at)
SELECT $1, $2, g, $4, $5, $6, $7, $8
  FROM generate_series(0, $3 - 1) AS g
    ON CONFLICT (owner_kind, owner_id, slot) DO UPDATE
   SET quota = excluded.quota, windows = excluded.windows, by_cost = excluded.by_cost,
       due_at = excluded.due_at, used_at = excluded.used_at
