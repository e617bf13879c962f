-- Lock the row of key $1 (waiting for the transaction that holds it), so that no budget
-- slot is handed out for it until this transaction ends; then its slots can be read whole.
SELECT true AS locked
  FROM apikey.keys k
 WHERE k.id = $1
   FOR NO KEY UPDATE
