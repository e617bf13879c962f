-- pg_apikey 0.2.0 -> 0.3.0. Run by ALTER EXTENSION pg_apikey UPDATE, in one transaction.
--
-- Every schema change of 0.3.0 is written here by hand, in the order it was made, so
-- that an updated database ends with the same schema as CREATE EXTENSION of 0.3.0
-- (tests/upgrade/run.sh compares the two with pg_dump and fails on any difference).
-- Every name is schema-qualified; nothing here depends on search_path.
\echo Use "ALTER EXTENSION pg_apikey UPDATE TO '0.3.0'" to load this file. \quit

CREATE FUNCTION apikey."invalidate_verify_caches"()
    RETURNS TRIGGER
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'invalidate_verify_caches_wrapper';

-- 0.3.0: verify's per-backend facts (imported keys in use, owners with limits) are
-- invalidated by the tables themselves, whoever writes them: the API functions, a
-- superuser's DML, a restore, a logical-replication apply worker (ENABLE ALWAYS).
ALTER FUNCTION apikey.invalidate_verify_caches() SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION apikey.invalidate_verify_caches() IS
'Trigger of apikey.keys (imported keys added, revoked or removed) and apikey.owner_limits (owners added or removed): tells every backend, at commit, to read verify''s per-backend facts again. Not for calling directly.';
CREATE TRIGGER imported_key_added AFTER INSERT ON apikey.keys
    FOR EACH ROW WHEN (NEW.imported) EXECUTE FUNCTION apikey.invalidate_verify_caches();
CREATE TRIGGER imported_key_changed AFTER UPDATE OF imported, revoked_at ON apikey.keys
    FOR EACH ROW WHEN (OLD.imported OR NEW.imported) EXECUTE FUNCTION apikey.invalidate_verify_caches();
CREATE TRIGGER imported_key_removed AFTER DELETE ON apikey.keys
    FOR EACH ROW WHEN (OLD.imported) EXECUTE FUNCTION apikey.invalidate_verify_caches();
CREATE TRIGGER keys_truncated AFTER TRUNCATE ON apikey.keys
    FOR EACH STATEMENT EXECUTE FUNCTION apikey.invalidate_verify_caches();
CREATE TRIGGER owners_changed AFTER INSERT OR DELETE OR UPDATE OF owner_kind, owner_id OR TRUNCATE
    ON apikey.owner_limits FOR EACH STATEMENT EXECUTE FUNCTION apikey.invalidate_verify_caches();
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER imported_key_added;
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER imported_key_changed;
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER imported_key_removed;
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER keys_truncated;
ALTER TABLE apikey.owner_limits ENABLE ALWAYS TRIGGER owners_changed;

-- 0.3.0: budget slots. Where verifies of one key, or of one owner's keys, come faster
-- than one at a time, part of what is left of that party's quota and rate limits is
-- handed out to slots, which verifies spend from in parallel (each locks one slot, not the
-- party's row); the party's row keeps the rest. What is left in total is always the row's
-- count plus what its slots hold, and a slot is only spent from while it holds enough:
-- never more is admitted than the limits allow. Only verify and the functions that set
-- limits write them (README, "Counting that scales").
CREATE TABLE apikey.key_slots (
    key_id  uuid NOT NULL REFERENCES apikey.keys (id) ON DELETE CASCADE,
    slot    integer NOT NULL CHECK (slot OPERATOR(pg_catalog.>=) 0),
    -- The slot's share of what is left of the key's quota (NULL: no quota).
    quota   bigint CHECK (quota OPERATOR(pg_catalog.>=) 0),
    -- Its allowance left in each of the key's rate limits (the default one first), and
    -- whether each counts cost (else requests).
    windows bigint[] NOT NULL,
    by_cost boolean[] NOT NULL,
    -- The first window end or refill after which the share no longer counts (NULL: none).
    due_at  timestamptz,
    used_at timestamptz NOT NULL,
    PRIMARY KEY (key_id, slot)
);
COMMENT ON TABLE apikey.key_slots IS
    'Budget slots of keys under concurrent use: parts of a key''s quota and rate-limit allowance that verifies spend in parallel. Written by verify and the functions that set limits.';
CREATE TABLE apikey.owner_slots (
    owner_kind text NOT NULL,
    owner_id   text NOT NULL,
    slot       integer NOT NULL CHECK (slot OPERATOR(pg_catalog.>=) 0),
    quota      bigint CHECK (quota OPERATOR(pg_catalog.>=) 0),
    windows    bigint[] NOT NULL,
    by_cost    boolean[] NOT NULL,
    due_at     timestamptz,
    used_at    timestamptz NOT NULL,
    PRIMARY KEY (owner_kind, owner_id, slot),
    FOREIGN KEY (owner_kind, owner_id) REFERENCES apikey.owner_limits (owner_kind, owner_id)
        ON DELETE CASCADE
);
COMMENT ON TABLE apikey.owner_slots IS
    'Budget slots of owners whose keys are verified concurrently: parts of the limits shared by an owner''s keys (apikey.owner_limits) that verifies spend in parallel. Written by verify and apikey.set_owner_limits.';
REVOKE ALL ON TABLE apikey.key_slots, apikey.owner_slots FROM PUBLIC;
-- pg_dump keeps them: what they hold is part of what is left.
SELECT pg_catalog.pg_extension_config_dump('apikey.key_slots', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.owner_slots', '');

-- 0.3.0: usage analytics. Verify counts calls and cost per key, hour and code in shared
-- memory (with pg_apikey in shared_preload_libraries); a background worker adds the counts
-- to these hourly rows every apikey.usage_flush_interval and deletes rows older than
-- apikey.usage_retention. key_id NULL: calls with unknown keys (KEY_NOT_FOUND), and the
-- OVERFLOW counter (counts that found no room in memory). org_id/user_id: the key's owner
-- when the row was written, kept when the key is deleted (no foreign key: usage outlives
-- keys, for invoices). Read through apikey.key_usage and apikey.owner_usage.
CREATE TABLE apikey.usage_hours (
    key_id  uuid,
    org_id  text,
    user_id text,
    hour    timestamptz NOT NULL,
    code    text NOT NULL,
    calls   bigint NOT NULL CHECK (calls OPERATOR(pg_catalog.>=) 0),
    cost    bigint NOT NULL CHECK (cost OPERATOR(pg_catalog.>=) 0),
    CONSTRAINT usage_hours_key_hour_code UNIQUE NULLS NOT DISTINCT (key_id, hour, code)
);
CREATE INDEX usage_hours_org_idx ON apikey.usage_hours (org_id, hour) WHERE org_id IS NOT NULL;
CREATE INDEX usage_hours_user_idx ON apikey.usage_hours (user_id, hour) WHERE org_id IS NULL;
CREATE INDEX usage_hours_hour_idx ON apikey.usage_hours (hour);
COMMENT ON TABLE apikey.usage_hours IS
    'Usage analytics: calls and cost per key, hour (UTC) and verify code, written by the pg_apikey usage writer from the counts in shared memory. Read with apikey.key_usage and apikey.owner_usage.';
REVOKE ALL ON TABLE apikey.usage_hours FROM PUBLIC;
-- pg_dump keeps them: they are what invoices are made from.
SELECT pg_catalog.pg_extension_config_dump('apikey.usage_hours', '');

-- 0.3.0: refills on a schedule. A key's or owner's refill periods end at
-- refill_anchor + k × refill_interval, each computed from the anchor (monthly periods
-- keep their day of the month, however idle the key was). Existing keys and owners keep
-- their last refill (or their start) as their anchor, so their next refill stays where
-- it was.
ALTER TABLE apikey.keys ADD COLUMN refill_anchor timestamptz;
ALTER TABLE apikey.owner_limits ADD COLUMN refill_anchor timestamptz;
UPDATE apikey.keys SET refill_anchor = coalesce(last_refill_at, created_at)
 WHERE refill_interval IS NOT NULL;
UPDATE apikey.owner_limits SET refill_anchor = coalesce(last_refill_at, set_at)
 WHERE refill_interval IS NOT NULL;
ALTER TYPE apikey.key_info ADD ATTRIBUTE refill_anchor timestamptz;
-- The end of an anchored refill period: anchor + (k + step) × every, where k is the
-- number of the last period end at or before t (k may be negative when the anchor is
-- after t). Each end is computed from the anchor, never by adding to the previous one,
-- so monthly periods follow the calendar (31 Jan, 28/29 Feb, 31 Mar), in UTC so that
-- the answer does not depend on the session's TimeZone. step 1: the next refill after a
-- refill (or start) at t; step 0: the period end a refill applied at t belongs to.
CREATE FUNCTION apikey.refill_period_end(anchor timestamptz, every interval, t timestamptz, step integer)
    RETURNS timestamptz
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    a timestamp := anchor AT TIME ZONE 'UTC';
    x timestamp := t AT TIME ZONE 'UTC';
    len float8 := greatest(extract(epoch FROM every), 1);
    k bigint := floor(extract(epoch FROM x - a) / len);
BEGIN
    -- k is estimated from the interval's average length, then set by the calendar.
    WHILE a + k * every > x LOOP
        k := k - 1;
    END LOOP;
    WHILE a + (k + 1) * every <= x LOOP
        k := k + 1;
    END LOOP;
    RETURN (a + (k + step) * every) AT TIME ZONE 'UTC';
END
$$;
COMMENT ON FUNCTION apikey.refill_period_end(timestamptz, interval, timestamptz, integer) IS
'The end of the anchored refill period that t falls in (anchor + k × every, computed from the anchor in UTC, never accumulated), moved by step periods: step 1 is the next refill after a refill at t. Used by the extension''s own statements.';

-- key_info_of takes what the slots hold as an argument (no longer reads them).
DROP FUNCTION apikey.key_info_of(apikey.keys);
-- A key's public fields from its stored row and what its budget slots hold (`held`, NULL
-- for none): the one place that builds apikey.key_info (every statement that returns or
-- records a key calls it; never the secret or digest). remaining is what is left in
-- total. It resolves no name but a qualified type, so it needs no SET clause and is
-- inlined where it is called (no function call per row, as bulk provisioning needs).
CREATE FUNCTION apikey.key_info_of(k apikey.keys, held bigint) RETURNS apikey.key_info
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
SELECT ROW(k.id, k.org_id, k.user_id, k.name, k.prefix, k.start, k.enabled, k.expires_at,
           k.permissions, k.metadata,
           k.remaining OPERATOR(pg_catalog.+) coalesce(held, 0),
           k.refill_amount, k.refill_interval,
           k.rate_limit_max, k.rate_limit_window, k.created_at, k.last_used_at, k.revoked_at,
           k.created_by_role, k.created_by_identity, k.updated_at, k.rotated_from,
           k.replaced_by, k.rate_limits, k.imported, k.refill_anchor)::apikey.key_info
$$;

-- What the budget slots of key `id` hold of its quota, as committed (NULL: no slots).
CREATE FUNCTION apikey.key_held(id uuid) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT sum(s.quota)::bigint FROM apikey.key_slots s WHERE s.key_id OPERATOR(pg_catalog.=) id
$$;
COMMENT ON FUNCTION apikey.key_info_of(apikey.keys, bigint) IS
'A key''s public fields (apikey.key_info) from its row of apikey.keys and what its budget slots hold of its quota (held), never the secret or its digest; remaining is what is left in total. Used by the extension''s own statements; the tables are closed to other roles.';
COMMENT ON FUNCTION apikey.key_held(uuid) IS
'What the budget slots of a key hold of its quota, as committed (NULL: none). Used by the extension''s own statements.';

-- ---------------------------------------------------------------- functions whose signature changed

-- 0.3.0: create_api_key, update_api_key, import_api_key and set_owner_limits gain
-- refill_anchor; get_owner_limits gains the refill_anchor column. A function's arguments
-- and result columns cannot be changed in place, so each old one is renamed, the new one
-- created (with a new C symbol: src/api/outdated.rs), the old one's privileges (a DBA's
-- REVOKE or GRANT) copied onto the new one, and the old one dropped. (A view or function
-- of the application's that calls an old one stops the update with PostgreSQL's "other
-- objects depend on it": drop it, update, and create it again.)
ALTER FUNCTION apikey.create_api_key(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, jsonb) RENAME TO create_api_key_0_2_0;
ALTER FUNCTION apikey.update_api_key(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[], jsonb) RENAME TO update_api_key_0_2_0;
ALTER FUNCTION apikey.import_api_key(bytea, text, text, text, text, text, boolean, timestamptz, jsonb, jsonb, bigint, bigint, interval, timestamptz, integer, interval, timestamptz, timestamptz) RENAME TO import_api_key_0_2_0;
ALTER FUNCTION apikey.set_owner_limits(text, text, bigint, bigint, interval, jsonb) RENAME TO set_owner_limits_0_2_0;
ALTER FUNCTION apikey.get_owner_limits(text, text) RENAME TO get_owner_limits_0_2_0;

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
	"rate_limits" jsonb DEFAULT NULL,
	"refill_anchor" timestamp with time zone DEFAULT NULL
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
AS 'MODULE_PATHNAME', 'create_api_key_030_wrapper';

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
	"rate_limits" jsonb DEFAULT NULL,
	"refill_anchor" timestamp with time zone DEFAULT NULL
) RETURNS SETOF apikey.key_info
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'update_api_key_030_wrapper';

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
	"last_used_at" timestamp with time zone DEFAULT NULL,
	"refill_anchor" timestamp with time zone DEFAULT NULL
) RETURNS uuid
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'import_api_key_030_wrapper';

CREATE FUNCTION apikey.set_owner_limits(
	"org_id" TEXT DEFAULT NULL,
	"user_id" TEXT DEFAULT NULL,
	"remaining" bigint DEFAULT NULL,
	"refill_amount" bigint DEFAULT NULL,
	"refill_interval" interval DEFAULT NULL,
	"rate_limits" jsonb DEFAULT NULL,
	"refill_anchor" timestamp with time zone DEFAULT NULL
) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_owner_limits_030_wrapper';

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
	"set_at" timestamp with time zone,
	"refill_anchor" timestamp with time zone
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'get_owner_limits_wrapper';

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
            ('apikey.create_api_key_0_2_0(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, jsonb)',
             'apikey.create_api_key(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, jsonb, timestamptz)'),
            ('apikey.update_api_key_0_2_0(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[], jsonb)',
             'apikey.update_api_key(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[], jsonb, timestamptz)'),
            ('apikey.import_api_key_0_2_0(bytea, text, text, text, text, text, boolean, timestamptz, jsonb, jsonb, bigint, bigint, interval, timestamptz, integer, interval, timestamptz, timestamptz)',
             'apikey.import_api_key(bytea, text, text, text, text, text, boolean, timestamptz, jsonb, jsonb, bigint, bigint, interval, timestamptz, integer, interval, timestamptz, timestamptz, timestamptz)'),
            ('apikey.set_owner_limits_0_2_0(text, text, bigint, bigint, interval, jsonb)',
             'apikey.set_owner_limits(text, text, bigint, bigint, interval, jsonb, timestamptz)'),
            ('apikey.get_owner_limits_0_2_0(text, text)',
             'apikey.get_owner_limits(text, text)')
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

DROP FUNCTION apikey.create_api_key_0_2_0(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, jsonb);
DROP FUNCTION apikey.update_api_key_0_2_0(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[], jsonb);
DROP FUNCTION apikey.import_api_key_0_2_0(bytea, text, text, text, text, text, boolean, timestamptz, jsonb, jsonb, bigint, bigint, interval, timestamptz, integer, interval, timestamptz, timestamptz);
DROP FUNCTION apikey.set_owner_limits_0_2_0(text, text, bigint, bigint, interval, jsonb);
DROP FUNCTION apikey.get_owner_limits_0_2_0(text, text);

COMMENT ON FUNCTION apikey.create_api_key(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, jsonb, timestamptz) IS
'Create an API key and return it in plaintext, once. org_id: an organization key (trusted callers need no user; ordinary callers need a role allowing create). user_id alone: a user key (ordinary callers only for themselves). Policy fields (permissions, remaining, refill_*, rate_limit_*, rate_limits) need a trusted caller. rate_limits: named limits, [{"name": "burst", "limit": 10, "window": "1 second"}, {"name": "daily", "limit": 50000, "window": "1 day", "unit": "cost"}]; the rate_limit_max/rate_limit_window pair is the limit named default. refill_anchor: the refill periods end at refill_anchor + k × refill_interval (default: now), so a monthly refill keeps its day of the month.';

COMMENT ON FUNCTION apikey.update_api_key(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[], jsonb, timestamptz) IS
'Change a key''s settings: only the arguments given change; clear => ''{expires_at,...}'' sets fields back to NULL. rate_limits replaces the whole list of named limits (their windows start over). refill_anchor: where the refill periods count from (NULL: unchanged; a new refill_interval re-anchors at now). Policy fields need a trusted caller; org keys need the update action. Applies to the very next verify.';

COMMENT ON FUNCTION apikey.import_api_key(bytea, text, text, text, text, text, boolean, timestamptz, jsonb, jsonb, bigint, bigint, interval, timestamptz, integer, interval, timestamptz, timestamptz, timestamptz) IS
'Import a key made by another system by the SHA-256 digest (32 bytes) of its whole text, with its owner, settings and history; returns its id. It then verifies with its original text (while apikey.accept_imported_keys is on). Re-runnable: an already stored digest returns that key''s id and changes nothing. refill_anchor: where its refill periods count from (default: last_refill_at, else created_at, else now). Trusted callers only. Recorded as key_imported.';

COMMENT ON FUNCTION apikey.set_owner_limits(text, text, bigint, bigint, interval, jsonb, timestamptz) IS
'Set the limits shared by every key of an organization (org_id), or by a user''s own keys (user_id): a quota (remaining, refill_amount every refill_interval, periods counted from refill_anchor, default now) and named rate_limits, as for a key. Replaces the owner''s limits and starts their counts over; all NULL removes them. Trusted callers only. Recorded in the audit trail as owner_limits_set.';

COMMENT ON FUNCTION apikey.get_owner_limits(text, text) IS
'The limits shared by an owner''s keys and their state now: what is left of the quota, the next refill (the next anchored period end) and the anchor, and each rate limit''s remaining and reset_at. No row: the owner has none. Trusted callers, members whose role allows read in the organization, and a user for its own; P0002 for anyone else.';

-- 0.3.0: key events. Each action on a key that an application caching verify answers
-- must hear of is announced on channel apikey_events when its transaction commits
-- (NOTIFY is transactional: nothing for a rollback): the audit row's action (an update
-- that disables the key: key_disabled), the key's id and owner, and the audit row's id,
-- from which an application that missed some (NOTIFY reaches only the sessions that
-- listen at commit) reads the audit trail. Never the key or its digest.
CREATE FUNCTION apikey.announce_key_event() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('apikey_events', pg_catalog.jsonb_build_object(
        'event', CASE WHEN NEW.action OPERATOR(pg_catalog.=) 'key_updated'
                       AND NEW.details OPERATOR(pg_catalog.#>) '{changes,enabled}'
                           OPERATOR(pg_catalog.=) 'false'::jsonb
                      THEN 'key_disabled' ELSE NEW.action END,
        'key_id', NEW.key_id,
        'org_id', NEW.details OPERATOR(pg_catalog.#>>) '{key,org_id}',
        'user_id', NEW.details OPERATOR(pg_catalog.#>>) '{key,user_id}',
        'audit_id', NEW.id)::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER key_events AFTER INSERT ON apikey.audit_log
    FOR EACH ROW
    WHEN (NEW.key_id IS NOT NULL AND NEW.action OPERATOR(pg_catalog.=) ANY
          ('{key_exposed,key_revoked,key_updated,key_deleted,key_rotated}'::text[]))
    EXECUTE FUNCTION apikey.announce_key_event();

-- 0.3.0: usage analytics (apikey.usage_hours is created above).
CREATE FUNCTION apikey.key_usage(
	"key_id" uuid,
	"since" timestamp with time zone DEFAULT now() - interval '30 days',
	"until" timestamp with time zone DEFAULT now(),
	"bucket" TEXT DEFAULT 'day'
) RETURNS TABLE (
	"bucket_start" timestamp with time zone,
	"code" TEXT,
	"calls" bigint,
	"cost" bigint
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'key_usage_wrapper';

CREATE FUNCTION apikey.owner_usage(
	"org_id" TEXT DEFAULT NULL,
	"user_id" TEXT DEFAULT NULL,
	"since" timestamp with time zone DEFAULT now() - interval '30 days',
	"until" timestamp with time zone DEFAULT now(),
	"bucket" TEXT DEFAULT 'day'
) RETURNS TABLE (
	"bucket_start" timestamp with time zone,
	"key_id" uuid,
	"code" TEXT,
	"calls" bigint,
	"cost" bigint
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'owner_usage_wrapper';

CREATE FUNCTION apikey.usage_live() RETURNS TABLE (
	"key_id" uuid,
	"bucket_start" timestamp with time zone,
	"code" TEXT,
	"calls" bigint,
	"cost" bigint
)
STRICT VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'usage_live_wrapper';

CREATE FUNCTION apikey.flush_usage() RETURNS bigint
STRICT VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'flush_usage_wrapper';

COMMENT ON FUNCTION apikey.key_usage(uuid, timestamptz, timestamptz, text) IS
'Usage analytics of one key: calls and cost (of admitted calls) by bucket (hour, day or month of the session''s time zone) and verify code, for the hours from since''s hour until before until: the written hourly rows plus what is counted in memory and not yet written. Needs pg_apikey in shared_preload_libraries (else 55000). Readable by whoever may read the key (others: P0002).';

COMMENT ON FUNCTION apikey.owner_usage(text, text, timestamptz, timestamptz, text) IS
'Usage analytics of an owner''s keys (exactly one of org_id and user_id): calls and cost by bucket, key and code, written and in memory, as key_usage. Trusted callers, members whose role allows read, and a user for its own keys (others: P0002). Needs pg_apikey in shared_preload_libraries (else 55000).';

COMMENT ON FUNCTION apikey.usage_live() IS
'What this server counted in this database and has not written yet, by key, hour and code (key_id NULL: unknown keys, and the OVERFLOW counter). On a standby: everything it counted, which is never written there. Trusted callers only. Needs pg_apikey in shared_preload_libraries (else 55000).';

COMMENT ON FUNCTION apikey.flush_usage() IS
'Write the usage counts now instead of at the next apikey.usage_flush_interval: asks the background writer for a round and waits for it (at most a minute; 55000 after). Returns the number of counters of this database written. Trusted callers only; 25006 on a standby.';

-- 0.3.0: leaked keys (the key events' trigger is created above).
CREATE FUNCTION apikey.report_exposed_keys(
	"reports" jsonb,
	"action" TEXT DEFAULT 'revoke'
) RETURNS TABLE (
	"token_hash" TEXT,
	"token_type" TEXT,
	"label" TEXT
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'report_exposed_keys_wrapper';

COMMENT ON FUNCTION apikey.report_exposed_keys(jsonb, text) IS
'Take a secret scanner''s report of leaked keys (the JSON array GitHub''s secret scanning partner program posts: [{"token", "type", "url", "source"}], at most 1000) and answer GitHub''s feedback rows: token_hash (hex SHA-256 of the token), token_type (as reported), label (true_positive for a key of this database: its checksum holds and its digest is found, or an imported key; else false_positive, decided by the checksum alone where it fails). action (revoke, disable or none) applies to true positives not already revoked; each is audited as key_exposed (with url and source) and announced on channel apikey_events. Trusted callers only; 22023 naming the malformed element.';

COMMENT ON FUNCTION apikey.announce_key_event() IS
'Trigger of apikey.audit_log: announces key_exposed, key_revoked, key_disabled, key_updated, key_deleted and key_rotated on channel apikey_events when the transaction commits, as {"event", "key_id", "org_id", "user_id", "audit_id"} (never the key). Not for calling directly.';
