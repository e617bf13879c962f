-- Every budget slot of owner ($1 kind, $2 id), locked (waiting for the verifies spending from them):
-- the caller holds the party's row locked, so no slot can be added meanwhile.
SELECT s.slot, s.quota, s.windows, s.used_at
  FROM apikey.owner_slots s
 WHERE s.owner_kind = $1 AND s.owner_id = $2
   FOR NO KEY UPDATE
