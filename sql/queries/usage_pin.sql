-- The usage writer's transaction: names resolve only in pg_catalog (every other name is
-- qualified), and it waits at most 5 s for a lock (a reader, a verify holding a key's
-- row); after that the round fails, the counters go back to memory, the next round retries.
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
       pg_catalog.set_config('lock_timeout', '5s', true)
