-- A user's own (user-owned) keys.
SELECT k.org_id, k.user_id, k.revoked_at IS NOT NULL AS revoked,
       apikey.key_info_of(k, apikey.key_held(k.id)) AS info
  FROM apikey.keys k
 WHERE k.org_id IS NULL AND k.user_id = $1
 ORDER BY k.created_at, k.id;
