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
