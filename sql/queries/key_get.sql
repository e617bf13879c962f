-- One key's owner and public fields.
SELECT k.org_id, k.user_id, k.revoked_at IS NOT NULL AS revoked,
       apikey.key_info_of(k, apikey.key_held(k.id)) AS info
  FROM apikey.keys k
 WHERE k.id = $1;
