-- After ALTER EXTENSION pg_apikey UPDATE on the database privileges_before.sql prepared:
-- the new functions carry the old ones' privileges; untouched defaults stay defaults.
DO $$
DECLARE
    verify text := 'apikey.verify_api_key(text, jsonb, integer)';
    create_key text := 'apikey.create_api_key(text, text, text, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, jsonb, timestamptz)';
BEGIN
    IF NOT has_function_privilege('upgrade_app', verify, 'EXECUTE WITH GRANT OPTION') THEN
        RAISE EXCEPTION 'upgrade check FAILED: the GRANT on verify_api_key was lost';
    END IF;
    IF has_function_privilege('upgrade_other', verify, 'EXECUTE') THEN
        RAISE EXCEPTION 'upgrade check FAILED: the REVOKE on verify_api_key was lost';
    END IF;
    RAISE NOTICE 'upgrade check ok: a GRANT and a REVOKE on verify_api_key survive the update';
    IF has_function_privilege('upgrade_other', create_key, 'EXECUTE') THEN
        RAISE EXCEPTION 'upgrade check FAILED: the REVOKE on create_api_key was lost';
    END IF;
    IF NOT has_function_privilege('upgrade_other', 'apikey.rotate_api_key(uuid, interval)', 'EXECUTE')
       OR NOT has_function_privilege('upgrade_other', 'apikey.update_api_key(uuid, text, timestamptz, jsonb, jsonb, bigint, bigint, interval, integer, interval, boolean, text[], jsonb, timestamptz)', 'EXECUTE') THEN
        RAISE EXCEPTION 'upgrade check FAILED: a default privilege was lost';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_proc WHERE proname LIKE '%\_0\_1\_0' OR proname LIKE '%\_0\_2\_0') THEN
        RAISE EXCEPTION 'upgrade check FAILED: an old function was left behind';
    END IF;
    RAISE NOTICE 'upgrade check ok: a REVOKE on create_api_key survives the update; defaults stay defaults';
END
$$;
