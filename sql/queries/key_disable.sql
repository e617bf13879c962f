-- Disable a key (report_exposed_keys, action 'disable'): verify answers KEY_DISABLED.
UPDATE apikey.keys k
   SET enabled = false, updated_at = $2
 WHERE k.id OPERATOR(pg_catalog.=) $1 AND k.enabled
RETURNING k.id AS key_id
