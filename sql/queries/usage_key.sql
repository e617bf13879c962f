-- apikey.key_usage: one key's counts, written ($1 key) and still in memory ($5..$8), in
-- buckets of $4 ('hour', 'day', 'month' in the session's time zone), for the hours that
-- start from the UTC hour of $2 until before $3.
SELECT pg_catalog.date_trunc($4, u.hour) AS bucket_start, $1 AS key_id, u.code,
       pg_catalog.sum(u.calls)::bigint AS calls, pg_catalog.sum(u.cost)::bigint AS cost
  FROM (SELECT h.hour, h.code, h.calls, h.cost
          FROM apikey.usage_hours AS h
         WHERE h.key_id OPERATOR(pg_catalog.=) $1
        UNION ALL
        SELECT l.hour, l.code, l.calls, l.cost
          FROM ROWS FROM (pg_catalog.unnest($5::timestamptz[]), pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::bigint[]), pg_catalog.unnest($8::bigint[]))
                   AS l (hour, code, calls, cost)) AS u
 WHERE u.hour OPERATOR(pg_catalog.>=) pg_catalog.to_timestamp(pg_catalog.floor(pg_catalog.date_part('epoch', $2) OPERATOR(pg_catalog./) 3600) OPERATOR(pg_catalog.*) 3600)
   AND u.hour OPERATOR(pg_catalog.<) $3
 GROUP BY 1, 3
 ORDER BY 1, 3
