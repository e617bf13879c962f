-- Every budget slot of key $1, locked (waiting for the verifies spending from them):
-- the caller holds the party's row locked, so no slot can be added meanwhile.
SELECT s.slot, s.quota, s.windows, s.used_at
  FROM apikey.key_slots s
 WHERE s.key_id = $1
   FOR NO KEY UPDATE
