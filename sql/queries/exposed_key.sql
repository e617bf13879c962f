-- report_exposed_keys: the key stored with digest $1 (when $2, only an imported one),
-- with what the action needs to know.
SELECT k.id AS key_id, k.revoked_at IS NOT NULL AS revoked, k.enabled
  FROM apikey.keys k
 WHERE k.digest OPERATOR(pg_catalog.=) $1 AND (NOT $2 OR k.imported)
