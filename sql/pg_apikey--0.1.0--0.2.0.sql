-- pg_apikey 0.1.0 -> 0.2.0. Run by ALTER EXTENSION pg_apikey UPDATE, in one transaction.
--
-- Every schema change of 0.2.0 is written here by hand, in the order it was made, so
-- that an updated database ends with the same schema as CREATE EXTENSION of 0.2.0
-- (tests/upgrade/run.sh compares the two with pg_dump and fails on any difference).
-- Every name is schema-qualified; nothing here depends on search_path.
\echo Use "ALTER EXTENSION pg_apikey UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------- tables and types

-- Named rate limits of a key, their windows, and whether it was imported.
ALTER TABLE apikey.keys
    ADD COLUMN rate_limits jsonb,
    ADD COLUMN rate_counts bigint[],
    ADD COLUMN rate_resets timestamptz[],
    ADD COLUMN imported boolean NOT NULL DEFAULT false;
CREATE INDEX keys_imported_idx ON apikey.keys (id) WHERE imported AND revoked_at IS NULL;

ALTER TYPE apikey.key_info
    ADD ATTRIBUTE rate_limits jsonb,
    ADD ATTRIBUTE imported boolean;

-- A key's public fields from its stored row: the one place that builds apikey.key_info
-- (every statement that returns or records a key calls it; never the secret or digest).
-- PostgreSQL inlines it into the statements that call it, so it costs nothing per row;
-- a SET clause would stop that, and it needs none: it resolves no name but the
-- schema-qualified type, and reads only its argument's columns.
CREATE FUNCTION apikey.key_info_of(k apikey.keys) RETURNS apikey.key_info
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
SELECT ROW(k.id, k.org_id, k.user_id, k.name, k.prefix, k.start, k.enabled, k.expires_at,
           k.permissions, k.metadata, k.remaining, k.refill_amount, k.refill_interval,
           k.rate_limit_max, k.rate_limit_window, k.created_at, k.last_used_at, k.revoked_at,
           k.created_by_role, k.created_by_identity, k.updated_at, k.rotated_from,
           k.replaced_by, k.rate_limits, k.imported)::apikey.key_info
$$;

-- Limits shared by an owner's keys.
CREATE TABLE apikey.owner_limits (
    owner_kind      text NOT NULL
                    CHECK (owner_kind OPERATOR(pg_catalog.=) 'org' OR owner_kind OPERATOR(pg_catalog.=) 'user'),
    owner_id        text NOT NULL CHECK (owner_id OPERATOR(pg_catalog.<>) ''),
    remaining       bigint CHECK (remaining OPERATOR(pg_catalog.>=) 0),
    refill_amount   bigint CHECK (refill_amount OPERATOR(pg_catalog.>=) 0),
    refill_interval interval,
    last_refill_at  timestamptz,
    rate_limits     jsonb,
    rate_counts     bigint[],
    rate_resets     timestamptz[],
    set_at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    set_by_role     text NOT NULL,
    set_by_identity text,
    PRIMARY KEY (owner_kind, owner_id),
    CHECK ((refill_amount IS NULL) OPERATOR(pg_catalog.=) (refill_interval IS NULL))
);
COMMENT ON TABLE apikey.owner_limits IS
    'Quotas and rate limits shared by an owner''s keys. Write through apikey.set_owner_limits.';
REVOKE ALL ON TABLE apikey.owner_limits FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('apikey.owner_limits', '');

-- ---------------------------------------------------------------- functions whose signature changed

-- verify_api_key gains cost and the rate_limits column; create_api_key, update_api_key and
-- rotate_api_key gain rate_limits. A function's arguments and result columns cannot be
-- changed in place, so each old one is renamed, the new one created, the old one's
-- privileges (a DBA's REVOKE or GRANT) copied onto the new one, and the old one dropped.
-- (A view or function of the application's that calls an old one stops the update with
-- PostgreSQL's "other objects depend on it": drop it, update, and create it again.)
ALTER FUNCTION apikey.verify_api_key(text, jsonb) RENAME TO verify_api_key_0_1_0;
ALTER FUNCTION apikey.create_api_key(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval)
    RENAME TO create_api_key_0_1_0;
ALTER FUNCTION apikey.update_api_key(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[])
    RENAME TO update_api_key_0_1_0;
ALTER FUNCTION apikey.rotate_api_key(uuid, interval) RENAME TO rotate_api_key_0_1_0;

-- The C symbol is named for what it is (0.1.0 called it verify_api_key_fast; the library
-- keeps that name too, for databases not yet updated).
CREATE FUNCTION apikey.verify_api_key(key text, required_permissions jsonb DEFAULT NULL,
                                      cost integer DEFAULT 1)
RETURNS TABLE (valid boolean, code text, key_id uuid, org_id text, user_id text, name text,
               permissions jsonb, metadata jsonb, remaining bigint, expires_at timestamptz,
               retry_after interval, rate_limits jsonb)
LANGUAGE c VOLATILE ROWS 1
AS 'MODULE_PATHNAME', 'verify_api_key';   -- the C symbol; src/verify/entry.rs

CREATE FUNCTION apikey.create_api_key(
	"org_id" TEXT DEFAULT NULL,
	"user_id" TEXT DEFAULT NULL,
	"name" TEXT DEFAULT NULL,
	"prefix" TEXT DEFAULT NULL,
	"expires_at" timestamp with time zone DEFAULT NULL,
	"permissions" jsonb DEFAULT NULL,
	"metadata" jsonb DEFAULT NULL,
	"remaining" bigint DEFAULT NULL,
	"refill_amount" bigint DEFAULT NULL,
	"refill_interval" interval DEFAULT NULL,
	"rate_limit_max" INT DEFAULT NULL,
	"rate_limit_window" interval DEFAULT NULL,
	"rate_limits" jsonb DEFAULT NULL
) RETURNS TABLE (
	"key_id" uuid,
	"key" TEXT,
	"start" TEXT,
	"prefix" TEXT,
	"org_id" TEXT,
	"user_id" TEXT,
	"name" TEXT,
	"expires_at" timestamp with time zone,
	"permissions" jsonb,
	"metadata" jsonb,
	"remaining" bigint,
	"refill_amount" bigint,
	"refill_interval" interval,
	"rate_limit_max" INT,
	"rate_limit_window" interval,
	"created_at" timestamp with time zone,
	"rate_limits" jsonb
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'create_api_key_wrapper';

CREATE FUNCTION apikey.update_api_key(
	"key_id" uuid,
	"name" TEXT DEFAULT NULL,
	"expires_at" timestamp with time zone DEFAULT NULL,
	"permissions" jsonb DEFAULT NULL,
	"metadata" jsonb DEFAULT NULL,
	"remaining" bigint DEFAULT NULL,
	"refill_amount" bigint DEFAULT NULL,
	"refill_interval" interval DEFAULT NULL,
	"rate_limit_max" INT DEFAULT NULL,
	"rate_limit_window" interval DEFAULT NULL,
	"enabled" bool DEFAULT NULL,
	"clear" TEXT[] DEFAULT NULL,
	"rate_limits" jsonb DEFAULT NULL
) RETURNS SETOF apikey.key_info
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'update_api_key_wrapper';

CREATE FUNCTION apikey.rotate_api_key(
	"key_id" uuid,
	"grace" interval DEFAULT '0'
) RETURNS TABLE (
	"key_id" uuid,
	"key" TEXT,
	"start" TEXT,
	"prefix" TEXT,
	"org_id" TEXT,
	"user_id" TEXT,
	"name" TEXT,
	"expires_at" timestamp with time zone,
	"permissions" jsonb,
	"metadata" jsonb,
	"remaining" bigint,
	"refill_amount" bigint,
	"refill_interval" interval,
	"rate_limit_max" INT,
	"rate_limit_window" interval,
	"created_at" timestamp with time zone,
	"rate_limits" jsonb
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'rotate_api_key_wrapper';

DO $copy_privileges$
DECLARE
    pair record;
    old_acl aclitem[];
    owner_oid oid;
    item record;
BEGIN
    FOR pair IN
        SELECT o.old::pg_catalog.regprocedure AS old, o.new::pg_catalog.regprocedure AS new
          FROM (VALUES
            ('apikey.verify_api_key_0_1_0(text, jsonb)', 'apikey.verify_api_key(text, jsonb, integer)'),
            ('apikey.create_api_key_0_1_0(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval)',
             'apikey.create_api_key(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, jsonb)'),
            ('apikey.update_api_key_0_1_0(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[])',
             'apikey.update_api_key(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[], jsonb)'),
            ('apikey.rotate_api_key_0_1_0(uuid, interval)', 'apikey.rotate_api_key(uuid, interval)')
          ) AS o (old, new)
    LOOP
        SELECT p.proacl, p.proowner INTO old_acl, owner_oid
          FROM pg_catalog.pg_proc p WHERE p.oid OPERATOR(pg_catalog.=) pair.old;
        -- NULL: the defaults (EXECUTE for PUBLIC), which the new function has too.
        CONTINUE WHEN old_acl IS NULL;
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', pair.new);
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(old_acl) a
                        WHERE a.grantee OPERATOR(pg_catalog.=) owner_oid) THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %I', pair.new,
                                      pg_catalog.pg_get_userbyid(owner_oid));
        END IF;
        FOR item IN
            SELECT a.grantee, a.is_grantable FROM pg_catalog.aclexplode(old_acl) a
             WHERE a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
               AND a.grantee OPERATOR(pg_catalog.<>) owner_oid
        LOOP
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s', pair.new,
                CASE WHEN item.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                     ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(item.grantee)) END,
                CASE WHEN item.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END LOOP;
END
$copy_privileges$;

DROP FUNCTION apikey.verify_api_key_0_1_0(text, jsonb);
DROP FUNCTION apikey.create_api_key_0_1_0(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval);
DROP FUNCTION apikey.update_api_key_0_1_0(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[]);
DROP FUNCTION apikey.rotate_api_key_0_1_0(uuid, interval);

-- ---------------------------------------------------------------- new functions

CREATE FUNCTION apikey.set_owner_limits(
	"org_id" TEXT DEFAULT NULL,
	"user_id" TEXT DEFAULT NULL,
	"remaining" bigint DEFAULT NULL,
	"refill_amount" bigint DEFAULT NULL,
	"refill_interval" interval DEFAULT NULL,
	"rate_limits" jsonb DEFAULT NULL
) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_owner_limits_wrapper';

CREATE FUNCTION apikey.get_owner_limits(
	"org_id" TEXT DEFAULT NULL,
	"user_id" TEXT DEFAULT NULL
) RETURNS TABLE (
	"org_id" TEXT,
	"user_id" TEXT,
	"remaining" bigint,
	"refill_amount" bigint,
	"refill_interval" interval,
	"next_refill_at" timestamp with time zone,
	"rate_limits" jsonb,
	"rate_limit_state" jsonb,
	"set_at" timestamp with time zone
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'get_owner_limits_wrapper';

CREATE FUNCTION apikey.import_api_key(
	"digest" bytea,
	"org_id" TEXT DEFAULT NULL,
	"user_id" TEXT DEFAULT NULL,
	"name" TEXT DEFAULT NULL,
	"prefix" TEXT DEFAULT NULL,
	"start" TEXT DEFAULT NULL,
	"enabled" bool DEFAULT true,
	"expires_at" timestamp with time zone DEFAULT NULL,
	"permissions" jsonb DEFAULT NULL,
	"metadata" jsonb DEFAULT NULL,
	"remaining" bigint DEFAULT NULL,
	"refill_amount" bigint DEFAULT NULL,
	"refill_interval" interval DEFAULT NULL,
	"last_refill_at" timestamp with time zone DEFAULT NULL,
	"rate_limit_max" INT DEFAULT NULL,
	"rate_limit_window" interval DEFAULT NULL,
	"created_at" timestamp with time zone DEFAULT NULL,
	"last_used_at" timestamp with time zone DEFAULT NULL
) RETURNS uuid
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'import_api_key_wrapper';

-- ---------------------------------------------------------------- documentation

COMMENT ON FUNCTION apikey.create_api_key(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, jsonb) IS
'Create an API key and return it in plaintext, once. org_id: an organization key (trusted callers need no user; ordinary callers need a role allowing create). user_id alone: a user key (ordinary callers only for themselves). Policy fields (permissions, remaining, refill_*, rate_limit_*, rate_limits) need a trusted caller. rate_limits: named limits, [{"name": "burst", "limit": 10, "window": "1 second"}, {"name": "daily", "limit": 50000, "window": "1 day", "unit": "cost"}]; the rate_limit_max/rate_limit_window pair is the limit named default.';

COMMENT ON FUNCTION apikey.verify_api_key(text, jsonb, integer) IS
'Verify a presented key: one row for any input. code: VALID, KEY_NOT_FOUND, KEY_DISABLED, KEY_EXPIRED, INSUFFICIENT_PERMISSIONS, RATE_LIMITED, USAGE_EXCEEDED (checked in that order: rate limits, the key''s then its owner''s, before quotas). required_permissions: an object of resources and actions (every one needed) or a query, {"$all": [...]} / {"$any": [...]}; a granted "*" grants every action on its resource. cost (default 1, 0 or more): what a VALID call spends from every quota that applies, the key''s and its owner''s (apikey.set_owner_limits), all or nothing, exactly under concurrency; cost 0 spends and counts nothing. remaining: the least left among those quotas after this call; rate_limits: each rate limit in force after this call (name, scope, limit, remaining, reset_at), for X-RateLimit-* headers; retry_after: when a refused call may succeed. Keys imported with apikey.import_api_key verify by their original text. Raises 22023 only for malformed required_permissions or cost.';

COMMENT ON FUNCTION apikey.update_api_key(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[], jsonb) IS
'Change a key''s settings: only the arguments given change; clear => ''{expires_at,...}'' sets fields back to NULL. rate_limits replaces the whole list of named limits (their windows start over). Policy fields need a trusted caller; org keys need the update action. Applies to the very next verify.';

COMMENT ON FUNCTION apikey.set_owner_limits(text, text, bigint, bigint, interval, jsonb) IS
'Set the limits shared by every key of an organization (org_id), or by a user''s own keys (user_id): a quota (remaining, refill_amount every refill_interval) and named rate_limits, as for a key. Replaces the owner''s limits and starts their counts over; all NULL removes them. Trusted callers only. Recorded in the audit trail as owner_limits_set.';

COMMENT ON FUNCTION apikey.get_owner_limits(text, text) IS
'The limits shared by an owner''s keys and their state now: what is left of the quota, the next refill, and each rate limit''s remaining and reset_at. No row: the owner has none. Trusted callers, members whose role allows read in the organization, and a user for its own; P0002 for anyone else.';

COMMENT ON FUNCTION apikey.import_api_key(bytea, text, text, text, text, text, boolean, timestamptz, jsonb, jsonb, bigint, bigint, interval, timestamptz, integer, interval, timestamptz, timestamptz) IS
'Import a key made by another system by the SHA-256 digest (32 bytes) of its whole text, with its owner, settings and history; returns its id. It then verifies with its original text (while apikey.accept_imported_keys is on). Re-runnable: an already stored digest returns that key''s id and changes nothing. Trusted callers only. Recorded as key_imported.';

COMMENT ON FUNCTION apikey.rotate_api_key(uuid, interval) IS
'Replace a key with a new one (new id and secret, same owner and settings), returned in plaintext once. The old key verifies for grace more (default 0), then answers KEY_EXPIRED; the two are linked by rotated_from/replaced_by.';

COMMENT ON FUNCTION apikey.key_info_of(apikey.keys) IS
'A key''s public fields (apikey.key_info) from its row of apikey.keys, never the secret or its digest. Used by the extension''s own statements; the table is closed to other roles.';
