-- Roles for a SaaS backend, least privilege (docs/application-developers.md, "Roles for a
-- SaaS backend"). Run once as a superuser, in the database that has pg_apikey, after
-- CREATE EXTENSION and again after every ALTER EXTENSION pg_apikey UPDATE (it is
-- idempotent; a release that adds a function gives it PUBLIC's default EXECUTE). The
-- role names are examples: rename app_provisioner, app_api and app_members to yours.
\set ON_ERROR_STOP 1

-- Who provisions keys: migrations, the admin backend, automation. A member of the
-- service role is trusted: it may create organization keys with no user attached and
-- set quotas, refills and rate limits.
DO $$ BEGIN
    CREATE ROLE app_provisioner LOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    IF NOT pg_has_role('app_provisioner', 'apikey_service', 'MEMBER') THEN
        GRANT apikey_service TO app_provisioner;
    END IF;
END $$;

-- Who faces the internet: the API server. It verifies keys, and builds every response
-- header from verify's own row; it cannot create, read, change or revoke any key.
DO $$ BEGIN
    CREATE ROLE app_api LOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- Members behind a gateway (PostgREST's "authenticated"), if you have them: they manage
-- their own organizations' keys as far as their membership role allows. Leave this out
-- when only your backend provisions keys.
DO $$ BEGIN
    CREATE ROLE app_members NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- Every apikey function is executable by PUBLIC by default (ordinary roles act only as
-- themselves, but may create user keys for themselves). Close them all, then open what
-- each role needs. The functions run their SQL as the extension's owner, so nothing
-- else needs a GRANT.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA apikey FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA apikey TO apikey_service;
-- (A function named without its arguments is the one function of that name: the lines
-- work on every release, whatever arguments it added.)
GRANT EXECUTE ON FUNCTION apikey.verify_api_key TO app_api;
GRANT EXECUTE ON FUNCTION
    apikey.create_api_key, apikey.list_api_keys, apikey.get_api_key, apikey.update_api_key,
    apikey.rotate_api_key, apikey.revoke_api_key, apikey.current_identity
  TO app_members;
-- 0.3.0 and later: usage analytics, for members whose role allows read (the functions
-- check that, as for the keys). Functions that an update adds are executable by PUBLIC,
-- as at CREATE EXTENSION: run this file again after ALTER EXTENSION pg_apikey UPDATE.
DO $$ BEGIN
    IF pg_catalog.to_regproc('apikey.key_usage') IS NOT NULL THEN
        GRANT EXECUTE ON FUNCTION apikey.key_usage, apikey.owner_usage TO app_members;
    END IF;
END $$;
