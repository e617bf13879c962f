-- An organization's keys ($1), optionally only those recorded with user $2.
SELECT k.org_id, k.user_id, k.revoked_at IS NOT NULL AS revoked,
       apikey.key_info_of(k, apikey.key_held(k.id)) AS info
  FROM apikey.keys k
 WHERE k.org_id = $1 AND ($2::text IS NULL OR k.user_id = $2)
 ORDER BY k.created_at, k.id;
