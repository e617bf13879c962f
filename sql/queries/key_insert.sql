-- A new key and its `key_created` audit row, in one statement.
WITH k AS (
    INSERT INTO apikey.keys AS n (digest, prefix, start, org_id, user_id, name,
        expires_at, permissions, metadata, remaining, refill_amount, refill_interval,
        rate_limit_max, rate_limit_window, rate_limits, refill_anchor,
        created_by_role, created_by_identity)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
    RETURNING n.id, n.org_id, n.created_at,
       apikey.key_info_of(n, NULL) AS info
), audit AS (
    INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details)
    SELECT 'key_created', k.org_id, k.id, $17, $18, jsonb_build_object('key', to_jsonb(k.info))
    FROM k
)
SELECT k.id AS key_id, k.created_at FROM k;
