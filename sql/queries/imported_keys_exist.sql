-- Whether imported keys are in use (verify then looks a key without a valid checksum up
-- by digest). Answered from the partial index keys_imported_idx.
SELECT EXISTS (SELECT 1 FROM apikey.keys k WHERE k.imported AND k.revoked_at IS NULL) AS found;
