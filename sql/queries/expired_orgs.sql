-- The organizations that have expired keys.
SELECT DISTINCT k.org_id
  FROM apikey.keys k
 WHERE k.org_id IS NOT NULL AND k.expires_at <= clock_timestamp();
