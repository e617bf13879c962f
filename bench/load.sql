-- Benchmark data: real keys for every workload (8 per kind, one per pgbench client) and
-- filler rows so that each keys table holds :total keys.
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pg_apikey;
\i :diy
CREATE SCHEMA bench;
CREATE TABLE bench.keys (kind text, i int, key text, PRIMARY KEY (kind, i));
SELECT apikey.create_organization('bench');

INSERT INTO bench.keys
SELECT 'plain', g - 1, (apikey.create_api_key(org_id => 'bench', name => 'plain',
        permissions => '{"api": ["read", "write"]}', metadata => '{"plan": "pro"}')).key
  FROM generate_series(1, 8) g;
INSERT INTO bench.keys
SELECT 'quota', g - 1, (apikey.create_api_key(org_id => 'bench', name => 'quota', remaining => 1000000000000)).key
  FROM generate_series(1, 8) g;
INSERT INTO bench.keys
SELECT 'rate', g - 1, (apikey.create_api_key(org_id => 'bench', name => 'rate',
        rate_limit_max => 1000000000, rate_limit_window => '1 hour')).key
  FROM generate_series(1, 8) g;
-- Metered (0.2.0): a quota and two named rate limits (cost 3 per call), and the same keys
-- in an organization whose plan (owner limits) they share.
INSERT INTO bench.keys
SELECT 'metered', g - 1, (apikey.create_api_key(org_id => 'bench', name => 'metered', remaining => 1000000000000,
        rate_limits => '[{"name": "burst", "limit": 1000000000, "window": "1 second"},
                         {"name": "daily", "limit": 1000000000000, "window": "1 day", "unit": "cost"}]')).key
  FROM generate_series(1, 8) g;
SELECT apikey.create_organization('plan');
SELECT apikey.set_owner_limits(org_id => 'plan', remaining => 1000000000000000,
    rate_limits => '[{"name": "org-minute", "limit": 1000000000000, "window": "1 minute"}]');
INSERT INTO bench.keys
SELECT 'metered_owner', g - 1, (apikey.create_api_key(org_id => 'plan', name => 'metered', remaining => 1000000000000,
        rate_limits => '[{"name": "burst", "limit": 1000000000, "window": "1 second"},
                         {"name": "daily", "limit": 1000000000000, "window": "1 day", "unit": "cost"}]')).key
  FROM generate_series(1, 8) g;
INSERT INTO bench.keys
SELECT 'hot', 0, (apikey.create_api_key(org_id => 'bench', name => 'hot', remaining => 1000000000000)).key;
-- Garbage: real plain keys with the last checksum character changed.
INSERT INTO bench.keys
SELECT 'garbage', i, left(key, -1) || CASE right(key, 1) WHEN 'x' THEN 'y' ELSE 'x' END
  FROM bench.keys WHERE kind = 'plain';

INSERT INTO bench.keys
SELECT 'diy_plain', g - 1, diy.create_key('bench', 'plain') FROM generate_series(1, 8) g;
UPDATE diy.keys SET permissions = '{"api": ["read", "write"]}', metadata = '{"plan": "pro"}';
INSERT INTO bench.keys
SELECT 'diy_quota', g - 1, diy.create_key('bench', 'quota', 1000000000000) FROM generate_series(1, 8) g;
INSERT INTO bench.keys
SELECT 'diy_rate', g - 1, diy.create_key('bench', 'rate', NULL, 1000000000, '1 hour') FROM generate_series(1, 8) g;
INSERT INTO bench.keys
SELECT 'diy_hot', 0, diy.create_key('bench', 'hot', 1000000000000);
INSERT INTO bench.keys
SELECT 'diy_garbage', i, left(key, -1) || CASE right(key, 1) WHEN 'x' THEN 'y' ELSE 'x' END
  FROM bench.keys WHERE kind = 'diy_plain';

-- In-process loops: N verifies (or floor lookups) of one key in one statement.
CREATE FUNCTION bench.inproc(what text, n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    k text := (SELECT key FROM bench.keys WHERE kind = 'plain' AND i = 0);
    t0 timestamptz;
    c bigint;
BEGIN
    t0 := clock_timestamp();
    IF what = 'verify' THEN
        SELECT count(*) INTO c FROM generate_series(1, n) g, LATERAL apikey.verify_api_key(CASE WHEN g > 0 THEN k END) v WHERE v.valid;
    ELSE
        SELECT count(*) INTO c FROM generate_series(1, n) g,
            LATERAL (SELECT f.id, f.org_id, f.user_id, f.name, f.permissions, f.metadata, f.remaining, f.expires_at
                       FROM apikey.keys f
                      WHERE f.digest = sha256(convert_to(CASE WHEN g > 0 THEN k END, 'UTF8'))
                     OFFSET 0) x;  -- OFFSET 0: one index probe per row, never a hash join
    END IF;
    IF c <> n THEN RAISE EXCEPTION 'expected % rows, got %', n, c; END IF;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1e9 / n;
END $$;

-- Bulk provisioning: keys created per second, N keys in one statement.
CREATE FUNCTION bench.bulk(what text, n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    c bigint;
BEGIN
    IF what = 'pg_apikey' THEN
        SELECT count(*) INTO c FROM generate_series(1, n) g, LATERAL apikey.create_api_key(org_id => 'bulk', name => 'bulk-' || g) k;
    ELSE
        SELECT count(*) INTO c FROM generate_series(1, n) g, LATERAL diy.create_key('bulk', 'bulk-' || g) k;
    END IF;
    IF c <> n THEN RAISE EXCEPTION 'expected % keys, got %', n, c; END IF;
    RETURN n / extract(epoch FROM clock_timestamp() - t0);
END $$;
SELECT apikey.create_organization('bulk');

-- Filler rows up to :total keys per table (not verifiable; they only make the index big).
CREATE FUNCTION bench.fill(total int) RETURNS void LANGUAGE sql AS $$
    INSERT INTO apikey.keys (digest, prefix, start, org_id, created_by_role)
    SELECT sha256(convert_to('filler-' || g, 'UTF8')), 'ak_', 'ak_fill', 'bench', 'bench'
      FROM generate_series((SELECT count(*) FROM apikey.keys) + 1, total) g;
    INSERT INTO diy.keys (digest, org_id)
    SELECT sha256(convert_to('diy-filler-' || g, 'UTF8')), 'bench'
      FROM generate_series((SELECT count(*) FROM diy.keys) + 1, total) g;
$$;
SELECT bench.fill(:total);
VACUUM ANALYZE;
