-- The usage writer: one database's counters, added to their hourly rows. Each counter is
-- one (key, hour, code), so no row is touched twice. The owner is the key's as it is
-- now (NULL for unknown keys, the OVERFLOW counter, and a key deleted since).
INSERT INTO apikey.usage_hours AS h (key_id, org_id, user_id, hour, code, calls, cost)
SELECT c.key_id, k.org_id, k.user_id, c.hour, c.code, c.calls, c.cost
  FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::timestamptz[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::bigint[]), pg_catalog.unnest($5::bigint[]))
           AS c (key_id, hour, code, calls, cost)
  LEFT JOIN apikey.keys AS k ON k.id OPERATOR(pg_catalog.=) c.key_id
    ON CONFLICT (key_id, hour, code) DO UPDATE
   SET calls = h.calls OPERATOR(pg_catalog.+) excluded.calls,
       cost = h.cost OPERATOR(pg_catalog.+) excluded.cost
