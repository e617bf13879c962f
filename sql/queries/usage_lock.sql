-- The writer's side of the advisory lock readers share (src/usage/mod.rs, ReadLock): held
-- from before the counters leave memory until they are committed to apikey.usage_hours.
SELECT pg_catalog.pg_advisory_xact_lock($1, $2)
