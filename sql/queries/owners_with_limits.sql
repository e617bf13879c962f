-- The owners that have limits, at most $1 of them (verify keeps them per backend).
SELECT o.owner_kind, o.owner_id FROM apikey.owner_limits o LIMIT $1;
