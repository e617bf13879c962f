-- Dropping the extension removes its tables and functions; roles are cluster-wide and
-- stay (the service role too), so the test roles are dropped here.
DROP EXTENSION pg_apikey;
SELECT count(*) AS apikey_objects_left FROM pg_class WHERE relnamespace = 'apikey'::regnamespace;
DROP ROLE regress_deployer, regress_owner, regress_admin, regress_member, regress_stranger;
SELECT rolname FROM pg_roles WHERE rolname = 'apikey_service';
