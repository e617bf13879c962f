-- A key's settings and state, locked for the update or rotation that reads them.
SELECT k.prefix, k.name, k.expires_at, k.permissions, k.metadata, k.remaining,
       k.refill_amount, k.refill_interval, k.rate_limit_max, k.rate_limit_window,
       k.rate_limits, k.refill_anchor, k.enabled,
       k.revoked_at IS NOT NULL AS revoked,
       k.replaced_by IS NOT NULL AS replaced,
       k.expires_at IS NOT NULL AND k.expires_at <= $2 AS expired
  FROM apikey.keys k
 WHERE k.id = $1
   FOR UPDATE;
