-- Mark a key revoked; the first revocation's time and role are kept.
UPDATE apikey.keys k
   SET revoked_at = coalesce(k.revoked_at, clock_timestamp()),
       revoked_by_role = coalesce(k.revoked_by_role, $2),
       revoked_by_identity = CASE WHEN k.revoked_at IS NULL THEN $3 ELSE k.revoked_by_identity END
 WHERE k.id = $1
RETURNING k.org_id, k.user_id, k.revoked_at IS NOT NULL AS revoked,
       apikey.key_info_of(k, apikey.key_held(k.id)) AS info;
