-- Lock the limits row of owner ($1 kind, $2 id), as key_lock.sql does a key's.
SELECT true AS locked
  FROM apikey.owner_limits o
 WHERE o.owner_kind = $1 AND o.owner_id = $2
   FOR NO KEY UPDATE
