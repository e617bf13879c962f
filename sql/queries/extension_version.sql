-- The version of pg_apikey installed in this database (ALTER EXTENSION … UPDATE changes it).
SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_apikey';
