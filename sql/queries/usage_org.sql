-- apikey.owner_usage for an organization ($1): the counts of its keys, written and still
-- in memory ($5..$9; a key's owner looked up), by bucket, key and code. As usage_key.sql.
SELECT pg_catalog.date_trunc($4, u.hour) AS bucket_start, u.key_id, u.code,
       pg_catalog.sum(u.calls)::bigint AS calls, pg_catalog.sum(u.cost)::bigint AS cost
  FROM (SELECT h.key_id, h.hour, h.code, h.calls, h.cost
          FROM apikey.usage_hours AS h
         WHERE h.org_id OPERATOR(pg_catalog.=) $1
        UNION ALL
        SELECT l.key_id, l.hour, l.code, l.calls, l.cost
          FROM ROWS FROM (pg_catalog.unnest($5::uuid[]), pg_catalog.unnest($6::timestamptz[]), pg_catalog.unnest($7::text[]), pg_catalog.unnest($8::bigint[]), pg_catalog.unnest($9::bigint[]))
                   AS l (key_id, hour, code, calls, cost)
          JOIN apikey.keys AS k ON k.id OPERATOR(pg_catalog.=) l.key_id
         WHERE k.org_id OPERATOR(pg_catalog.=) $1) AS u
 WHERE u.hour OPERATOR(pg_catalog.>=) pg_catalog.to_timestamp(pg_catalog.floor(pg_catalog.date_part('epoch', $2) OPERATOR(pg_catalog./) 3600) OPERATOR(pg_catalog.*) 3600)
   AND u.hour OPERATOR(pg_catalog.<) $3
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3
