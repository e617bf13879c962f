-- pg_apikey: tables, grants and the service role.
-- Runs first in CREATE EXTENSION, before any function exists. Every name is
-- schema-qualified; the extension's tables are closed to PUBLIC and reached only
-- through the apikey.* functions.

-- The schema "apikey" (from the control file) must belong to the installing role and
-- let nobody else create objects in it: objects another role could place there would be
-- found by the extension's own code.
DO $bootstrap$
DECLARE
    nsp record;
BEGIN
    SELECT n.oid, n.nspowner, n.nspacl INTO nsp
      FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) 'apikey';
    IF nsp.nspowner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r
                                             WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        RAISE EXCEPTION 'pg_apikey: schema "apikey" already exists and belongs to another role'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Drop or rename that schema, then run CREATE EXTENSION pg_apikey again.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.aclexplode(nsp.nspacl) a
               WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
                 AND a.grantee OPERATOR(pg_catalog.<>) nsp.nspowner) THEN
        RAISE EXCEPTION 'pg_apikey: other roles may create objects in schema "apikey"'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'REVOKE CREATE ON SCHEMA apikey from them, then run CREATE EXTENSION pg_apikey again.';
    END IF;
END
$bootstrap$;

REVOKE ALL ON SCHEMA apikey FROM PUBLIC;
GRANT USAGE ON SCHEMA apikey TO PUBLIC;

-- The service role: its members are trusted callers. Created NOLOGIN when missing; its
-- name is the setting apikey.service_role (default apikey_service).
DO $service_role$
DECLARE
    role_name text := COALESCE(
        NULLIF(pg_catalog.btrim(pg_catalog.current_setting('apikey.service_role', true)), ''),
        'apikey_service');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) role_name) THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', role_name);
    END IF;
END
$service_role$;

CREATE TABLE apikey.organizations (
    id              text PRIMARY KEY CHECK (id OPERATOR(pg_catalog.<>) ''),
    name            text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by_role text NOT NULL
);
COMMENT ON TABLE apikey.organizations IS
    'Organizations that own API keys (built-in membership source). Write through apikey.create_organization.';

-- What each member role allows on an organization's keys. Rows with is_default shipped
-- with the extension; a customised row (is_default = false) for the same role and action
-- overrides the default. Only customised rows are dumped by pg_dump, so a restore
-- never collides with the defaults that CREATE EXTENSION inserts.
CREATE TABLE apikey.member_role_actions (
    role       text NOT NULL CHECK (role OPERATOR(pg_catalog.<>) ''),
    action     text NOT NULL CHECK (action OPERATOR(pg_catalog.<>) ''),
    allowed    boolean NOT NULL,
    is_default boolean NOT NULL DEFAULT false,
    PRIMARY KEY (role, action, is_default)
);
COMMENT ON TABLE apikey.member_role_actions IS
    'Role-to-action mapping for organization keys. Change it with apikey.set_role_action.';
INSERT INTO apikey.member_role_actions (role, action, allowed, is_default)
SELECT r.role, a.action, r.role OPERATOR(pg_catalog.<>) 'member', true
  FROM (VALUES ('owner'), ('admin'), ('member')) AS r (role),
       (VALUES ('create'), ('read'), ('update'), ('delete')) AS a (action);

CREATE TABLE apikey.members (
    org_id     text NOT NULL REFERENCES apikey.organizations (id) ON DELETE CASCADE,
    user_id    text NOT NULL CHECK (user_id OPERATOR(pg_catalog.<>) ''),
    role       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX members_user_id_idx ON apikey.members (user_id);
COMMENT ON TABLE apikey.members IS
    'Organization members and their roles (built-in membership source). Write through apikey.add_member.';

CREATE TABLE apikey.keys (
    id                  uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    -- SHA-256 of the whole key text; the plaintext is never stored.
    digest              bytea NOT NULL CONSTRAINT keys_digest_key UNIQUE
                        CHECK (pg_catalog.length(digest) OPERATOR(pg_catalog.=) 32),
    prefix              text NOT NULL,
    start               text NOT NULL,
    org_id              text,
    user_id             text,
    name                text,
    enabled             boolean NOT NULL DEFAULT true,
    expires_at          timestamptz,
    permissions         jsonb,
    metadata            jsonb,
    remaining           bigint CHECK (remaining OPERATOR(pg_catalog.>=) 0),
    refill_amount       bigint CHECK (refill_amount OPERATOR(pg_catalog.>=) 0),
    refill_interval     interval,
    last_refill_at      timestamptz,
    rate_limit_max      integer CHECK (rate_limit_max OPERATOR(pg_catalog.>) 0),
    rate_limit_window   interval,
    rate_window_reset_at timestamptz,
    rate_window_count   integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    created_by_role     text NOT NULL,
    created_by_identity text,
    updated_at          timestamptz,
    last_used_at        timestamptz,
    revoked_at          timestamptz,
    revoked_by_role     text,
    revoked_by_identity text,
    -- Rotation links: the key this one replaced, and the key that replaced this one.
    rotated_from        uuid,
    replaced_by         uuid,
    -- 0.2.0: named rate limits (the list as given) and each one's window, by position in
    -- the list: what it has counted, and when it ends. Replacing the list starts them over.
    rate_limits         jsonb,
    rate_counts         bigint[],
    rate_resets         timestamptz[],
    -- 0.2.0: made by apikey.import_api_key from another system's digest (no checksum).
    imported            boolean NOT NULL DEFAULT false,
    -- 0.3.0: where the refill periods are counted from (period k ends at
    -- refill_anchor + k × refill_interval); NULL when the key has no refill.
    refill_anchor       timestamptz,
    CHECK (org_id IS NOT NULL OR user_id IS NOT NULL),
    CHECK ((refill_amount IS NULL) OPERATOR(pg_catalog.=) (refill_interval IS NULL)),
    CHECK ((rate_limit_max IS NULL) OPERATOR(pg_catalog.=) (rate_limit_window IS NULL))
);
CREATE INDEX keys_org_id_idx ON apikey.keys (org_id) WHERE org_id IS NOT NULL;
CREATE INDEX keys_user_id_idx ON apikey.keys (user_id) WHERE org_id IS NULL;
-- Whether imported keys are still in use: verify looks a key that has no valid checksum
-- up by digest only while this index has entries.
CREATE INDEX keys_imported_idx ON apikey.keys (id) WHERE imported AND revoked_at IS NULL;
COMMENT ON TABLE apikey.keys IS
    'API keys: digest, prefix and start only, never the plaintext. Reached through the apikey.* functions.';

-- The public fields of a key, as returned by get_api_key, list_api_keys and
-- revoke_api_key: never the secret or its digest. Built by apikey.key_info_of below.
CREATE TYPE apikey.key_info AS (
    key_id              uuid,
    org_id              text,
    user_id             text,
    name                text,
    prefix              text,
    start               text,
    enabled             boolean,
    expires_at          timestamptz,
    permissions         jsonb,
    metadata            jsonb,
    remaining           bigint,
    refill_amount       bigint,
    refill_interval     interval,
    rate_limit_max      integer,
    rate_limit_window   interval,
    created_at          timestamptz,
    last_used_at        timestamptz,
    revoked_at          timestamptz,
    created_by_role     text,
    created_by_identity text,
    updated_at          timestamptz,
    rotated_from        uuid,
    replaced_by         uuid,
    rate_limits         jsonb,
    imported            boolean,
    refill_anchor       timestamptz
);

-- 0.2.0: limits shared by every key of an owner — an organization's keys, or a user's own
-- (user-owned) keys. Set with apikey.set_owner_limits. The same quota, refill and named
-- rate limits as a key's, with their state; setting them again starts them over.
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
    -- 0.3.0: where the refill periods are counted from, as for a key.
    refill_anchor   timestamptz,
    PRIMARY KEY (owner_kind, owner_id),
    CHECK ((refill_amount IS NULL) OPERATOR(pg_catalog.=) (refill_interval IS NULL))
);
COMMENT ON TABLE apikey.owner_limits IS
    'Quotas and rate limits shared by an owner''s keys. Write through apikey.set_owner_limits.';

-- Every management action, with who did it and what changed (never a secret). Verify
-- writes no rows here. Read it with apikey.list_audit_events.
CREATE TABLE apikey.audit_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    action         text NOT NULL,
    org_id         text,
    key_id         uuid,
    subject        text,
    actor_role     text NOT NULL,
    actor_identity text,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_org_id_idx ON apikey.audit_log (org_id, id);
CREATE INDEX audit_log_key_id_idx ON apikey.audit_log (key_id);
COMMENT ON TABLE apikey.audit_log IS
    'Management actions on organizations, members and keys. Read through apikey.list_audit_events.';

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

-- Closed to everyone but the owner: all access goes through the functions.
REVOKE ALL ON TABLE apikey.organizations, apikey.member_role_actions, apikey.members, apikey.keys,
    apikey.audit_log, apikey.owner_limits FROM PUBLIC;
REVOKE ALL ON SEQUENCE apikey.audit_log_id_seq FROM PUBLIC;

-- pg_dump keeps keys, organizations, memberships and customised role mappings.
SELECT pg_catalog.pg_extension_config_dump('apikey.organizations', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.members', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.keys', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.member_role_actions', 'WHERE NOT is_default');
SELECT pg_catalog.pg_extension_config_dump('apikey.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.owner_limits', '');

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
