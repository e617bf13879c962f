-- The usage writer: last_used_at of each key from its latest VALID call, where it is
-- later than the stored one. A key whose row another transaction holds (a verify of a
-- limited key in an open transaction) is skipped, not waited for: that verify writes it.
UPDATE apikey.keys AS k
   SET last_used_at = c.at
  FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::timestamptz[])) AS c (key_id, at)
 WHERE k.id OPERATOR(pg_catalog.=) c.key_id
   AND (k.last_used_at IS NULL OR k.last_used_at OPERATOR(pg_catalog.<) c.at)
   AND k.id OPERATOR(pg_catalog.=) ANY (SELECT l.id FROM apikey.keys AS l
                                         WHERE l.id OPERATOR(pg_catalog.=) ANY ($1::uuid[])
                                           FOR NO KEY UPDATE SKIP LOCKED)
