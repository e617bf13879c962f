-- A new key (prefix $6, digest $2, start $3, made by $4/$5) with the owner and settings of
-- key $1, its current quota and refill included, linked to it.
INSERT INTO apikey.keys AS n (digest, prefix, start, org_id, user_id, name, enabled, expires_at,
    permissions, metadata, remaining, refill_amount, refill_interval, last_refill_at, refill_anchor,
    rate_limit_max, rate_limit_window, rate_limits, created_by_role, created_by_identity, rotated_from)
SELECT $2, $6, $3, k.org_id, k.user_id, k.name, k.enabled, k.expires_at,
       k.permissions, k.metadata, k.remaining, k.refill_amount, k.refill_interval, k.last_refill_at,
       k.refill_anchor, k.rate_limit_max, k.rate_limit_window, k.rate_limits, $4, $5, k.id
  FROM apikey.keys k
 WHERE k.id = $1
RETURNING n.id AS key_id, n.prefix, n.org_id, n.user_id, n.name, n.expires_at, n.permissions,
          n.metadata, n.remaining, n.refill_amount, n.refill_interval, n.rate_limit_max,
          n.rate_limit_window, n.rate_limits, n.refill_anchor, n.created_at;
