-- Delete a key and record it, in one statement.
WITH gone AS (
    DELETE FROM apikey.keys k WHERE k.id = $1
    RETURNING k.id, k.org_id,
       apikey.key_info_of(k, apikey.key_held(k.id)) AS info
)
INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details)
SELECT 'key_deleted', g.org_id, g.id, $2, $3, jsonb_build_object('key', to_jsonb(g.info))
  FROM gone g;
