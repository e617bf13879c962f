-- pg_apikey 0.1.0 -> 0.2.0. Run by ALTER EXTENSION pg_apikey UPDATE, in one transaction.
--
-- Every schema change of 0.2.0 is written here by hand, in the order it was made, so
-- that an updated database ends with the same schema as CREATE EXTENSION of 0.2.0
-- (tests/upgrade/run.sh compares the two with pg_dump and fails on any difference).
-- Every name is schema-qualified; nothing here depends on search_path.
\echo Use "ALTER EXTENSION pg_apikey UPDATE TO '0.2.0'" to load this file. \quit

-- verify_api_key's C symbol is named for what it is (0.1.0 called it
-- verify_api_key_fast; the library keeps that name too, for databases not yet updated).
CREATE OR REPLACE FUNCTION apikey.verify_api_key(key text, required_permissions jsonb DEFAULT NULL)
RETURNS TABLE (valid boolean, code text, key_id uuid, org_id text, user_id text, name text,
               permissions jsonb, metadata jsonb, remaining bigint, expires_at timestamptz,
               retry_after interval)
LANGUAGE c VOLATILE ROWS 1
AS 'MODULE_PATHNAME', 'verify_api_key';

-- Permission queries ($all/$any) and "*" grants: verify's documentation says so.
COMMENT ON FUNCTION apikey.verify_api_key(text, jsonb) IS
'Verify a presented key: one row for any input. code: VALID, KEY_NOT_FOUND, KEY_DISABLED, KEY_EXPIRED, INSUFFICIENT_PERMISSIONS, RATE_LIMITED, USAGE_EXCEEDED (checked in that order). required_permissions: an object of resources and actions (every one needed) or a query, {"$all": [...]} / {"$any": [...]}; a granted "*" grants every action on its resource. A VALID use spends one of remaining and counts toward the rate limit, atomically; remaining is what is left after this call; retry_after says when a refused key may succeed. Raises 22023 only for malformed required_permissions.';
