-- Which of the tables the usage writer writes exist in this database (pg_apikey may be
-- absent, or not yet updated to 0.3.0, which adds apikey.usage_hours).
SELECT pg_catalog.to_regclass('apikey.keys') IS NOT NULL AS keys,
       pg_catalog.to_regclass('apikey.usage_hours') IS NOT NULL AS usage
