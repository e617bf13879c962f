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
           k.replaced_by, k.rate_limits, k.imported)::apikey.key_info
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
