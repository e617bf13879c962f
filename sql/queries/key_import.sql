-- A key imported from another system (digest $1, with its settings and history), and its
-- `key_imported` audit row, in one statement. No row: the digest is already stored.
WITH k AS (
    INSERT INTO apikey.keys AS n (digest, prefix, start, org_id, user_id, name, enabled,
        expires_at, permissions, metadata, remaining, refill_amount, refill_interval,
        last_refill_at, rate_limit_max, rate_limit_window, created_at, last_used_at, imported,
        created_by_role, created_by_identity)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
            coalesce($17, clock_timestamp()), $18, true, $19, $20)
    ON CONFLICT (digest) DO NOTHING
    RETURNING n.id, n.org_id,
       apikey.key_info_of(n) AS info
), audit AS (
    INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details)
    SELECT 'key_imported', k.org_id, k.id, $19, $20, jsonb_build_object('key', to_jsonb(k.info))
    FROM k
)
SELECT k.id AS key_id FROM k;
