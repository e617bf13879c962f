-- verify_api_key is a C entry point written by hand in src/verify.rs (one index probe,
-- no SQL on its way), so it is declared here. Same contract as every other function:
-- SECURITY INVOKER, search_path pinned, EXECUTE for PUBLIC (a DBA may REVOKE it).
CREATE FUNCTION apikey.verify_api_key(key text, required_permissions jsonb DEFAULT NULL)
RETURNS TABLE (valid boolean, code text, key_id uuid, org_id text, user_id text, name text,
               permissions jsonb, metadata jsonb, remaining bigint, expires_at timestamptz,
               retry_after interval)
LANGUAGE c VOLATILE ROWS 1
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'verify_api_key_fast';
