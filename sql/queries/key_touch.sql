-- Record a use of a key without quota or rate limit, at most once per $3 — and never
-- wait for it: a row another transaction holds is skipped (SKIP LOCKED), not waited for.
UPDATE apikey.keys k
   SET last_used_at = $2
 WHERE k.id = (SELECT l.id
                 FROM apikey.keys l
                WHERE l.id = $1 AND (l.last_used_at IS NULL OR l.last_used_at <= $2 - $3)
                  FOR UPDATE SKIP LOCKED);
