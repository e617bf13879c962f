-- The do-it-yourself baseline: what a team would write instead of pg_apikey, written as
-- well as such a team would write it. An ordinary table with a unique digest index, a
-- PL/pgSQL verify with the same checks (enabled, expiry, permissions, an atomic quota
-- decrement, a fixed-window rate limit), and a PL/pgSQL create.
CREATE SCHEMA diy;

CREATE TABLE diy.keys (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    digest            bytea NOT NULL UNIQUE,
    org_id            text,
    user_id           text,
    name              text,
    enabled           boolean NOT NULL DEFAULT true,
    expires_at        timestamptz,
    permissions       jsonb,
    metadata          jsonb,
    remaining         bigint,
    rate_limit_max    integer,
    rate_limit_window interval,
    rate_reset_at     timestamptz,
    rate_count        integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION diy.create_key(p_org text, p_name text, p_remaining bigint DEFAULT NULL,
                               p_rate_max integer DEFAULT NULL, p_rate_window interval DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    k text := 'ak_' || replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '');
BEGIN
    INSERT INTO diy.keys (digest, org_id, name, remaining, rate_limit_max, rate_limit_window)
    VALUES (sha256(convert_to(k, 'UTF8')), p_org, p_name, p_remaining, p_rate_max, p_rate_window);
    RETURN k;
END $$;

CREATE FUNCTION diy.verify(p_key text, p_required jsonb DEFAULT NULL,
    OUT valid boolean, OUT code text, OUT key_id uuid, OUT org_id text, OUT user_id text,
    OUT name text, OUT permissions jsonb, OUT metadata jsonb, OUT remaining bigint,
    OUT expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    k diy.keys;
BEGIN
    SELECT * INTO k FROM diy.keys WHERE digest = sha256(convert_to(p_key, 'UTF8'));
    IF NOT FOUND THEN
        valid := false; code := 'KEY_NOT_FOUND'; RETURN;
    END IF;
    key_id := k.id; org_id := k.org_id; user_id := k.user_id; name := k.name;
    permissions := k.permissions; metadata := k.metadata; remaining := k.remaining;
    expires_at := k.expires_at; valid := false;
    IF NOT k.enabled THEN code := 'KEY_DISABLED'; RETURN; END IF;
    IF k.expires_at IS NOT NULL AND k.expires_at <= now() THEN code := 'KEY_EXPIRED'; RETURN; END IF;
    IF p_required IS NOT NULL AND NOT coalesce(k.permissions, '{}') @> p_required THEN
        code := 'INSUFFICIENT_PERMISSIONS'; RETURN;
    END IF;
    IF k.rate_limit_max IS NOT NULL OR k.remaining IS NOT NULL THEN
        UPDATE diy.keys d SET
            remaining = CASE WHEN d.remaining IS NULL THEN NULL ELSE d.remaining - 1 END,
            rate_count = CASE WHEN d.rate_limit_max IS NULL THEN d.rate_count
                              WHEN d.rate_reset_at IS NULL OR d.rate_reset_at <= now() THEN 1
                              ELSE d.rate_count + 1 END,
            rate_reset_at = CASE WHEN d.rate_limit_max IS NULL THEN d.rate_reset_at
                                 WHEN d.rate_reset_at IS NULL OR d.rate_reset_at <= now() THEN now() + d.rate_limit_window
                                 ELSE d.rate_reset_at END
        WHERE d.id = k.id
          AND (d.remaining IS NULL OR d.remaining > 0)
          AND (d.rate_limit_max IS NULL OR d.rate_reset_at IS NULL OR d.rate_reset_at <= now()
               OR d.rate_count < d.rate_limit_max)
        RETURNING d.remaining INTO remaining;
        IF NOT FOUND THEN
            code := CASE WHEN k.remaining = 0 THEN 'USAGE_EXCEEDED' ELSE 'RATE_LIMITED' END;
            RETURN;
        END IF;
    END IF;
    valid := true; code := 'VALID';
END $$;
