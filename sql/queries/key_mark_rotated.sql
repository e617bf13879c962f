-- The old key of a rotation ($1) points to its replacement ($2) and expires $4 after $3
-- (if that is sooner than its own expiry). Returns its expiry.
UPDATE apikey.keys k
   SET replaced_by = $2,
       updated_at = $3,
       expires_at = CASE WHEN k.expires_at IS NULL OR k.expires_at > $3 + $4 THEN $3 + $4
                         ELSE k.expires_at END
 WHERE k.id = $1
RETURNING k.expires_at;
