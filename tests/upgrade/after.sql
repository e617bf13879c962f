-- After an upgrade: the old rows work with every management function, uses are spent
-- from where they were, new keys verify, the audit trail goes on. Run by a superuser with
-- psql (ON_ERROR_STOP); each check raises an exception when it does not hold.
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.check(ok boolean, what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'upgrade check failed: %', what;
    END IF;
    RAISE NOTICE 'upgrade check ok: %', what;
END $$;
CREATE FUNCTION pg_temp.k(label text) RETURNS public.upgrade_keys LANGUAGE sql AS
    $$ SELECT * FROM public.upgrade_keys WHERE upgrade_keys.label = k.label $$;
-- The codes of n verifies of one key, one after another.
CREATE FUNCTION pg_temp.verify_n(key text, n int) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE codes text[] := '{}'; c text;
BEGIN
    FOR i IN 1 .. n LOOP
        SELECT v.code INTO c FROM apikey.verify_api_key(key) v;
        codes := codes || c;
    END LOOP;
    RETURN codes;
END $$;
CREATE TEMP TABLE audit_before AS SELECT * FROM apikey.audit_log;
SET client_min_messages = notice;

-- Uses are spent from where they were left.
SELECT pg_temp.check(v.code = 'VALID' AND v.remaining = 6, 'part-spent quota goes on from 7 to 6')
  FROM apikey.verify_api_key((pg_temp.k('quota_part_spent')).key) v;
SELECT pg_temp.check(v.code = 'VALID' AND v.remaining = 99, 'due refill gives 100 and spends one')
  FROM apikey.verify_api_key((pg_temp.k('refill_due')).key) v;
SELECT pg_temp.check(v.code = 'USAGE_EXCEEDED' AND v.retry_after > interval '23 hours', 'refill not yet due: refused with retry_after')
  FROM apikey.verify_api_key((pg_temp.k('refill_later')).key) v;
SELECT pg_temp.check(pg_temp.verify_n((pg_temp.k('rate_mid_window')).key, 4) = '{VALID,VALID,VALID,RATE_LIMITED}',
                     'rate limit window goes on: 3 more of 5');
SELECT pg_temp.check(v.code = 'RATE_LIMITED' AND v.retry_after > interval '23 hours', 'rate limit at its limit stays refused')
  FROM apikey.verify_api_key((pg_temp.k('rate_at_limit')).key) v;
SELECT pg_temp.check(v.code = 'VALID' AND v.remaining = 15, 'quota and rate limit together')
  FROM apikey.verify_api_key((pg_temp.k('quota_and_rate')).key) v;
SELECT pg_temp.check(v.code = 'KEY_NOT_FOUND', 'revoked key stays unknown')
  FROM apikey.verify_api_key((pg_temp.k('revoked')).key) v;
SELECT pg_temp.check(v.code = 'KEY_NOT_FOUND', 'deleted key stays unknown')
  FROM apikey.verify_api_key((pg_temp.k('deleted')).key) v;
SELECT pg_temp.check(v.code = 'KEY_EXPIRED', 'expired key stays expired')
  FROM apikey.verify_api_key((pg_temp.k('expiring')).key) v;
SELECT pg_temp.check(v.code = 'VALID' AND v.remaining = 39, 'rotated key in its grace period')
  FROM apikey.verify_api_key((pg_temp.k('rotated_old')).key, '{"api": ["read"]}') v;
SELECT pg_temp.check(v.code = 'VALID' AND v.remaining = 39, 'the key that replaced it has its own copy of the quota')
  FROM apikey.verify_api_key((pg_temp.k('rotated_new')).key, '{"api": ["read"]}') v;
SELECT pg_temp.check(v.code = 'KEY_EXPIRED', 'key rotated without grace stays expired')
  FROM apikey.verify_api_key((pg_temp.k('rotated_away')).key) v;
SELECT pg_temp.check(v.code = 'VALID' AND v.user_id = 'gw-user-1' AND v.org_id IS NULL, 'gateway user key keeps its identity')
  FROM apikey.verify_api_key((pg_temp.k('gateway_user')).key) v;

-- Management functions on old rows.
SELECT pg_temp.check(u.enabled, 'update_api_key re-enables an old key')
  FROM apikey.update_api_key((pg_temp.k('disabled')).key_id, enabled => true) u;
SELECT pg_temp.check(v.code = 'VALID', 're-enabled key verifies')
  FROM apikey.verify_api_key((pg_temp.k('disabled')).key) v;
SELECT pg_temp.check(u.remaining = 500, 'update_api_key gives an exhausted old key a new quota')
  FROM apikey.update_api_key((pg_temp.k('quota_exhausted')).key_id, remaining => 500) u;
SELECT pg_temp.check(u.expires_at IS NULL, 'update_api_key clears an old key''s expiry')
  FROM apikey.update_api_key((pg_temp.k('future_expiry')).key_id, clear => '{expires_at}') u;
SELECT pg_temp.check(v.code = 'VALID' AND v.remaining = 499, 'refilled by update, spends again')
  FROM apikey.verify_api_key((pg_temp.k('quota_exhausted')).key) v;
CREATE TEMP TABLE rotated AS
SELECT r.* FROM apikey.rotate_api_key((pg_temp.k('org_plain')).key_id, grace => '1 hour') r;
SELECT pg_temp.check(v.code = 'VALID' AND v.permissions = '{"deploy": ["run"], "files": ["read", "write"]}',
                     'rotating an old key gives a key with its settings')
  FROM rotated r, LATERAL apikey.verify_api_key(r.key, '{"deploy": ["run"]}') v;
SELECT pg_temp.check(g.replaced_by = r.key_id, 'old key links to its replacement')
  FROM rotated r, LATERAL apikey.get_api_key((pg_temp.k('org_plain')).key_id) g;
SELECT pg_temp.check(r.revoked_at IS NOT NULL, 'revoke an old key')
  FROM apikey.revoke_api_key((pg_temp.k('user_plain')).key_id) r;
SELECT pg_temp.check(v.code = 'KEY_NOT_FOUND', 'revoked old key is refused')
  FROM apikey.verify_api_key((pg_temp.k('user_plain')).key) v;
SELECT apikey.delete_api_key((pg_temp.k('org_with_creator')).key_id);
SELECT pg_temp.check(NOT EXISTS (SELECT FROM apikey.list_api_keys(org_id => 'globex') l WHERE l.key_id = (pg_temp.k('org_with_creator')).key_id),
                     'delete an old key');

-- Ordinary roles on old rows: members by their roles, strangers refused.
SET ROLE upg_alice;
SELECT pg_temp.check(count(*) >= 10, 'an admin lists the organization''s old keys')
  FROM apikey.list_api_keys(org_id => 'acme');
SELECT pg_temp.check(v.code = 'VALID', 'an admin''s new org key verifies')
  FROM apikey.create_api_key(org_id => 'acme', name => 'after upgrade') c, LATERAL apikey.verify_api_key(c.key) v;
RESET ROLE;
SET ROLE upg_audrey;
SELECT pg_temp.check(count(*) >= 10, 'the custom auditor role still reads')
  FROM apikey.list_api_keys(org_id => 'acme');
RESET ROLE;
SET ROLE upg_bob;
DO $$
BEGIN
    PERFORM apikey.create_api_key(org_id => 'acme', name => 'not allowed');
    RAISE EXCEPTION 'upgrade check failed: a plain member created an org key';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'upgrade check ok: a plain member is still refused (42501)';
END $$;
RESET ROLE;

-- New keys of every owner kind, by trusted callers.
SET ROLE upg_backend;
SELECT pg_temp.check(v.code = 'VALID' AND v.org_id = 'acme' AND v.user_id IS NULL AND v.remaining = 9,
                     'new org key with no user and a quota')
  FROM apikey.create_api_key(org_id => 'acme', remaining => 10) c, LATERAL apikey.verify_api_key(c.key) v;
SELECT pg_temp.check(o.id = 'initech', 'create_organization')
  FROM apikey.create_organization('initech') o;
SELECT pg_temp.check(m.role = 'owner', 'add_member')
  FROM apikey.add_member('initech', 'upg_bob', 'owner') m;
RESET ROLE;

-- The audit trail: every old row intact, the new actions appended after them.
SELECT pg_temp.check(NOT EXISTS (SELECT * FROM audit_before EXCEPT SELECT * FROM apikey.audit_log), 'old audit rows intact');
SELECT pg_temp.check(
    (SELECT array_agg(action ORDER BY id) FROM apikey.audit_log WHERE id > (SELECT max(id) FROM audit_before))
    @> ARRAY['key_updated', 'key_rotated', 'key_revoked', 'key_deleted', 'key_created', 'org_created', 'member_added'],
    'new actions are audited after the old ones');
