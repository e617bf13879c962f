-- Replace the budget slots of key $1 (locked by key_slots_lock.sql) by $2 slots,
-- numbered from 0, each with quota share $3, window allowances $4 counting cost
-- where $5, current until $6, handed out at $7. $2 = 0: no slots.
WITH gone AS (
    DELETE FROM apikey.key_slots s WHERE s.key_id = $1 AND s.slot >= $2
)
INSERT INTO apikey.key_slots AS s (key_id, slot, quota, windows, by_cost, due_at, used_at)
SELECT $1, g, $3, $4, $5, $6, $7
  FROM generate_series(0, $2 - 1) AS g
    ON CONFLICT (key_id, slot) DO UPDATE
   SET quota = excluded.quota, windows = excluded.windows, by_cost = excluded.by_cost,
       due_at = excluded.due_at, used_at = excluded.used_at
