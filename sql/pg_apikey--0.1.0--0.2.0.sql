-- pg_apikey 0.1.0 -> 0.2.0. Run by ALTER EXTENSION pg_apikey UPDATE, in one transaction.
--
-- Every schema change of 0.2.0 is written here by hand, in the order it was made, so
-- that an updated database ends with the same schema as CREATE EXTENSION of 0.2.0
-- (tests/upgrade/run.sh compares the two with pg_dump and fails on any difference).
-- Every name is schema-qualified; nothing here depends on search_path.
\echo Use "ALTER EXTENSION pg_apikey UPDATE TO '0.2.0'" to load this file. \quit
