-- Set the limits of owner ($1 kind, $2 id): quota $3, refill $4 every $5 counted from
-- anchor $10, rate limits $6, by $7/$8 at $9. Every count starts over. With its
-- `owner_limits_set` audit row.
WITH s AS (
    INSERT INTO apikey.owner_limits AS o (owner_kind, owner_id, remaining, refill_amount,
        refill_interval, rate_limits, set_at, set_by_role, set_by_identity, refill_anchor)
    VALUES ($1, $2, $3, $4, $5, $6, $9, $7, $8, $10)
    ON CONFLICT (owner_kind, owner_id) DO UPDATE
       SET remaining = excluded.remaining, refill_amount = excluded.refill_amount,
           refill_interval = excluded.refill_interval, last_refill_at = NULL,
           rate_limits = excluded.rate_limits, rate_counts = NULL, rate_resets = NULL,
           set_at = excluded.set_at, set_by_role = excluded.set_by_role,
           set_by_identity = excluded.set_by_identity, refill_anchor = excluded.refill_anchor
    RETURNING o.owner_kind
)
INSERT INTO apikey.audit_log (action, org_id, subject, actor_role, actor_identity, details)
SELECT 'owner_limits_set',
       CASE WHEN $1 = 'org' THEN $2 END, CASE WHEN $1 = 'user' THEN $2 END, $7, $8,
       jsonb_build_object('remaining', $3, 'refill_amount', $4, 'refill_interval', $5,
                          'rate_limits', $6, 'refill_anchor', $10)
  FROM s;
