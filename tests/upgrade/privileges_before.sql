-- A DBA's privileges on verify_api_key and create_api_key, set on a database at an
-- earlier release (psql variable :version) before the update; privileges_after.sql
-- checks that they survive it. 0.1.0 -> 0.2.0 re-creates both functions (new arguments
-- and columns), so the update script must carry the privileges over; later updates must
-- leave them alone.
CREATE EXTENSION pg_apikey VERSION :'version';
DO $$ BEGIN
    CREATE ROLE upgrade_app;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    CREATE ROLE upgrade_other;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
-- verify only for the application's role (which may pass it on); create for nobody else.
DO $$
DECLARE
    old boolean := (SELECT extversion = '0.1.0' FROM pg_extension WHERE extname = 'pg_apikey');
    verify text := CASE WHEN old THEN 'apikey.verify_api_key(text, jsonb)'
                        ELSE 'apikey.verify_api_key(text, jsonb, integer)' END;
    create_key text := 'apikey.create_api_key(text, text, text, text, timestamptz, jsonb, jsonb, '
                       'bigint, bigint, interval, integer, interval'
                       || CASE WHEN old THEN ')' ELSE ', jsonb)' END;
BEGIN
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', verify);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO upgrade_app WITH GRANT OPTION', verify);
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', create_key);
END
$$;
