-- A mistyped or made-up key is refused by its checksum before any table is touched. The
-- statistics of one transaction show it: a verify that probes apikey.keys adds index
-- scans of the table (pg_stat_xact_user_tables.idx_scan), one refused by its checksum
-- adds none — not only the KEY_NOT_FOUND code, which a probe that finds nothing gives too.
CREATE FUNCTION pg_temp.keys_scans() RETURNS bigint LANGUAGE sql
    AS $$ SELECT coalesce(idx_scan, 0) + seq_scan FROM pg_stat_xact_user_tables
           WHERE relid = 'apikey.keys'::regclass $$;
SELECT id FROM apikey.create_organization('checksum_org');
SELECT key AS real_key, key_id AS real_id
  FROM apikey.create_api_key(org_id => 'checksum_org', name => 'checksum probe') \gset
SELECT left(:'real_key', -1) || CASE right(:'real_key', 1) WHEN 'a' THEN 'b' ELSE 'a' END AS mistyped \gset
-- Whether imported keys are in use is read once per backend (and after each change):
-- read it here, outside the transaction measured.
SELECT code FROM apikey.verify_api_key('warm up');

BEGIN;
SELECT pg_temp.keys_scans() AS before \gset
SELECT code FROM apikey.verify_api_key(:'real_key');
SELECT pg_temp.keys_scans() > :before AS a_real_key_is_probed;
SELECT pg_temp.keys_scans() AS before \gset
SELECT code FROM apikey.verify_api_key(:'mistyped');
SELECT code FROM apikey.verify_api_key('ak_madeupmadeupmadeupmadeupmadeupmadeupmadeup123456');
SELECT code FROM apikey.verify_api_key('not a key at all');
SELECT code FROM apikey.verify_api_key('');
SELECT pg_temp.keys_scans() - :before AS scans_for_keys_refused_by_their_checksum;
COMMIT;

-- While imported keys are in use, a key without pg_apikey's checksum is looked up by its
-- digest (that is how an imported key is found); with apikey.accept_imported_keys = off
-- it is refused without a probe again.
SELECT apikey.import_api_key(sha256(convert_to('legacy-key-for-the-checksum-test', 'UTF8')),
                             org_id => 'checksum_org') AS imported \gset
SELECT code FROM apikey.verify_api_key('warm up');
BEGIN;
SELECT pg_temp.keys_scans() AS before \gset
SELECT code FROM apikey.verify_api_key('legacy-key-for-the-checksum-test');
SELECT code FROM apikey.verify_api_key('not a key at all');
SELECT pg_temp.keys_scans() > :before AS looked_up_while_imported_keys_are_in_use;
SET LOCAL apikey.accept_imported_keys = off;
SELECT pg_temp.keys_scans() AS before \gset
SELECT code FROM apikey.verify_api_key('legacy-key-for-the-checksum-test');
SELECT code FROM apikey.verify_api_key('not a key at all');
SELECT code FROM apikey.verify_api_key(:'mistyped');
SELECT pg_temp.keys_scans() - :before AS scans_with_accept_imported_keys_off;
COMMIT;
SELECT apikey.delete_api_key(:'imported');
SELECT apikey.delete_api_key(:'real_id');
