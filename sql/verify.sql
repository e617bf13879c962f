-- verify_api_key is a C entry point written by hand in src/verify/entry.rs (one index probe,
-- no SQL on its way), so it is declared here: SECURITY INVOKER, EXECUTE for PUBLIC (a DBA
-- may REVOKE it). Unlike every other function it has no SET search_path clause: it pins
-- search_path = pg_catalog, pg_temp itself around the only SQL it runs (the usage
-- writes), so that the plain path, which resolves no names at all, does not pay the GUC
-- save and restore on every call.
CREATE FUNCTION apikey.verify_api_key(key text, required_permissions jsonb DEFAULT NULL,
                                      cost integer DEFAULT 1)
RETURNS TABLE (valid boolean, code text, key_id uuid, org_id text, user_id text, name text,
               permissions jsonb, metadata jsonb, remaining bigint, expires_at timestamptz,
               retry_after interval, rate_limits jsonb)
LANGUAGE c VOLATILE ROWS 1
AS 'MODULE_PATHNAME', 'verify_api_key';   -- the C symbol; src/verify/entry.rs
