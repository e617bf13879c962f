-- The least-privilege recipe (examples/least_privilege.sql) still holds: after
-- ALTER EXTENSION UPDATE on a database where it was applied at an older release, and in
-- a database restored by pg_restore from a dump of one where it was applied. Named
-- without arguments, every function is the current one of that name. With
-- -v since=0.1.0: only the functions that release had are checked (a function a later
-- release added has PUBLIC's default EXECUTE until the recipe is run again, as
-- docs/application-developers.md says).
\if :{?since}
\else
\set since ''
\endif
SET apikey_recipe.since = :'since';
DO $$
DECLARE
    f text;
    since text := current_setting('apikey_recipe.since');
BEGIN
    IF NOT has_function_privilege('app_api', to_regproc('apikey.verify_api_key')::oid, 'EXECUTE') THEN
        RAISE EXCEPTION 'upgrade check FAILED: app_api lost EXECUTE on verify_api_key';
    END IF;
    FOREACH f IN ARRAY ARRAY['create_api_key', 'update_api_key', 'get_api_key', 'list_api_keys',
                             'rotate_api_key', 'revoke_api_key', 'delete_api_key', 'import_api_key',
                             'set_owner_limits', 'get_owner_limits', 'create_organization', 'add_member'] LOOP
        -- 0.2.0 added these.
        CONTINUE WHEN since = '0.1.0' AND f IN ('import_api_key', 'set_owner_limits', 'get_owner_limits');
        IF has_function_privilege('app_api', to_regproc('apikey.' || f)::oid, 'EXECUTE') THEN
            RAISE EXCEPTION 'upgrade check FAILED: app_api may execute %', f;
        END IF;
        IF NOT has_function_privilege('app_provisioner', to_regproc('apikey.' || f)::oid, 'EXECUTE') THEN
            RAISE EXCEPTION 'upgrade check FAILED: app_provisioner may not execute %', f;
        END IF;
    END LOOP;
    FOREACH f IN ARRAY ARRAY['create_api_key', 'update_api_key', 'get_api_key', 'list_api_keys',
                             'rotate_api_key', 'revoke_api_key'] LOOP
        IF NOT has_function_privilege('app_members', to_regproc('apikey.' || f)::oid, 'EXECUTE') THEN
            RAISE EXCEPTION 'upgrade check FAILED: app_members lost EXECUTE on %', f;
        END IF;
    END LOOP;
    IF since <> '0.1.0' AND has_function_privilege('app_members', to_regproc('apikey.set_owner_limits')::oid, 'EXECUTE') THEN
        RAISE EXCEPTION 'upgrade check FAILED: app_members may execute set_owner_limits';
    END IF;
    RAISE NOTICE 'upgrade check ok: the least-privilege recipe holds in database % (verify only for app_api, everything for app_provisioner, the members'' functions for app_members)%', current_database(),
        CASE WHEN since = '' THEN '' ELSE ', for the functions ' || since || ' had, before the recipe runs again' END;
END
$$;
-- And in use: the API role verifies a key of the data set, and cannot create one.
SET ROLE app_api;
SELECT code <> '' AS answered FROM apikey.verify_api_key('ak_not_a_real_key');
DO $$ BEGIN
    PERFORM apikey.create_api_key(name => 'mine');
    RAISE EXCEPTION 'upgrade check FAILED: app_api created a key';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'upgrade check ok: app_api verifies and is refused create_api_key (42501) in database %', current_database();
END $$;
RESET ROLE;
