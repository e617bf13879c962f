-- Remove the limits of owner ($1 kind, $2 id), by $3/$4, with an `owner_limits_set` audit
-- row (every setting NULL) when there were any.
WITH d AS (
    DELETE FROM apikey.owner_limits o
     WHERE o.owner_kind = $1 AND o.owner_id = $2
    RETURNING o.owner_kind
)
INSERT INTO apikey.audit_log (action, org_id, subject, actor_role, actor_identity, details)
SELECT 'owner_limits_set',
       CASE WHEN $1 = 'org' THEN $2 END, CASE WHEN $1 = 'user' THEN $2 END, $3, $4,
       jsonb_build_object('remaining', NULL, 'refill_amount', NULL, 'refill_interval', NULL,
                          'rate_limits', NULL)
  FROM d;
