-- Delete expired keys — all of them when $1, else user $2's own and those of the
-- organizations $3 — and record each deletion.
WITH gone AS (
    DELETE FROM apikey.keys k
     WHERE k.expires_at <= clock_timestamp()
       AND ($1 OR (k.org_id IS NULL AND k.user_id = $2) OR k.org_id = ANY ($3))
    RETURNING k.id, k.org_id,
       apikey.key_info_of(k, apikey.key_held(k.id)) AS info
)
INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details)
SELECT 'key_deleted', g.org_id, g.id, $4, $5,
       jsonb_build_object('reason', 'expired', 'key', to_jsonb(g.info))
  FROM gone g;
