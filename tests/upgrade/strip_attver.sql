-- Before pg_upgrade from a PostgreSQL 15.18 (or later 15.x) cluster to 16.14 or 18.6:
-- 15.18 keeps a reserved column option "pg_attver" on every column it creates, which its
-- own pg_dump leaves out but the pg_dump of 16.14 and 18.6 copies into the new cluster,
-- whose servers refuse it ('unrecognized parameter "pg_attver"') — for every user table,
-- with or without pg_apikey. Columns made before 15.18 have no such option, so removing
-- it leaves the old cluster as a 15.17 one would have it. Run as a superuser in every
-- database of the old cluster, right before pg_upgrade.
UPDATE pg_catalog.pg_attribute a
   SET attoptions = NULLIF(ARRAY(SELECT o FROM pg_catalog.unnest(a.attoptions) o
                                  WHERE o NOT LIKE 'pg\_attver=%'), '{}')
 WHERE a.attrelid >= 16384
   AND pg_catalog.array_to_string(a.attoptions, ',') LIKE '%pg\_attver=%';
