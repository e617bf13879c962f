-- The id of the key stored with digest $1, if any.
SELECT k.id AS key_id FROM apikey.keys k WHERE k.digest = $1;
