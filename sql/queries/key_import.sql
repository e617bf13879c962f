-- A key imported from another system, and its `key_imported` audit row, in one statement:
-- $1..$18 as for key_insert.sql, then its history: enabled $19, last_refill_at $20,
-- created_at $21, last_used_at $22. No row: the digest is already stored.
WITH k AS (
    INSERT INTO apikey.keys AS n (digest, prefix, start, org_id, user_id, name,
        expires_at, permissions, metadata, remaining, refill_amount, refill_interval,
        rate_limit_max, rate_limit_window, rate_limits, refill_anchor,
        created_by_role, created_by_identity,
        enabled, last_refill_at, created_at, last_used_at, imported)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, coalesce($21, clock_timestamp()), $22, true)
    ON CONFLICT (digest) DO NOTHING
    RETURNING n.id, n.org_id,
       apikey.key_info_of(n, NULL) AS info
), audit AS (
    INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details)
    SELECT 'key_imported', k.org_id, k.id, $17, $18, jsonb_build_object('key', to_jsonb(k.info))
    FROM k
)
SELECT k.id AS key_id FROM k;
