-- A DBA's privileges on the functions whose arguments or result columns 0.2.0 changes
-- (they are re-created by the update script): set on a 0.1.0 database before the update.
-- privileges_after.sql checks that they survive it.
CREATE EXTENSION pg_apikey VERSION '0.1.0';
DO $$ BEGIN
    CREATE ROLE upgrade_app;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    CREATE ROLE upgrade_other;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
-- verify only for the application's role (which may pass it on); create for nobody else.
REVOKE EXECUTE ON FUNCTION apikey.verify_api_key(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikey.verify_api_key(text, jsonb) TO upgrade_app WITH GRANT OPTION;
REVOKE EXECUTE ON FUNCTION apikey.create_api_key(text, text, text, text, timestamptz, jsonb, jsonb,
    bigint, bigint, interval, integer, interval) FROM PUBLIC;
