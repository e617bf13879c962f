-- A realistic pg_apikey data set, written with the 0.1.0 interface only, so that it can
-- be built by every release since. Run by a superuser with psql (ON_ERROR_STOP) in a
-- database where pg_apikey is installed. The plaintext of every key is kept in
-- public.upgrade_keys for the checks that follow (answers.sql, after.sql).
SET client_min_messages = warning;
DO $roles$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['upg_backend', 'upg_olga', 'upg_alice', 'upg_bob', 'upg_audrey', 'upg_web'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        END IF;
    END LOOP;
END
$roles$;
GRANT apikey_service TO upg_backend;

CREATE TABLE public.upgrade_keys (label text PRIMARY KEY, key text NOT NULL, key_id uuid NOT NULL);
GRANT ALL ON public.upgrade_keys TO PUBLIC;
-- Settings kept in the catalog, which pg_upgrade must carry along.
ALTER DATABASE :"DBNAME" SET apikey.last_used_resolution = '30s';

-- Organizations and members of every role, a custom role with custom actions.
SELECT apikey.set_role_action('auditor', 'read', true);
SELECT apikey.set_role_action('auditor', 'export', true);
SELECT apikey.set_role_action('member', 'read', true);
SET ROLE upg_backend;
SELECT id FROM apikey.create_organization('acme', 'Acme Inc.');
SELECT id FROM apikey.create_organization('globex', 'Globex');
SELECT role FROM apikey.add_member('acme', 'upg_olga', 'owner');
SELECT role FROM apikey.add_member('acme', 'upg_alice', 'admin');
SELECT role FROM apikey.add_member('acme', 'upg_bob', 'member');
SELECT role FROM apikey.add_member('acme', 'upg_audrey', 'auditor');
SELECT role FROM apikey.add_member('globex', 'upg_alice', 'member');
SELECT role FROM apikey.add_member('globex', 'gw-user-1', 'admin');
RESET ROLE;

-- Keys of every kind, created by the callers that make them in production.
SET ROLE upg_backend;
INSERT INTO public.upgrade_keys
SELECT 'org_plain', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'ci deploy', prefix => 'dp_live_',
    permissions => '{"deploy": ["run"], "files": ["read", "write"]}', metadata => '{"team": "infra", "n": 3}');
INSERT INTO public.upgrade_keys
SELECT 'org_with_creator', key, key_id FROM apikey.create_api_key(org_id => 'globex', user_id => 'upg_alice', name => 'created for alice');
INSERT INTO public.upgrade_keys
SELECT 'user_plain', key, key_id FROM apikey.create_api_key(user_id => 'upg_bob', name => 'bob laptop', metadata => '{"os": "linux"}');
INSERT INTO public.upgrade_keys
SELECT 'quota_part_spent', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'metered', remaining => 10);
INSERT INTO public.upgrade_keys
SELECT 'quota_exhausted', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'exhausted', remaining => 1);
INSERT INTO public.upgrade_keys
SELECT 'refill_due', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'refilled',
    remaining => 2, refill_amount => 100, refill_interval => '1 second');
INSERT INTO public.upgrade_keys
SELECT 'refill_later', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'refill tomorrow',
    remaining => 1, refill_amount => 50, refill_interval => '1 day');
INSERT INTO public.upgrade_keys
SELECT 'rate_mid_window', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'rate limited',
    rate_limit_max => 5, rate_limit_window => '1 day');
INSERT INTO public.upgrade_keys
SELECT 'rate_at_limit', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'rate at limit',
    rate_limit_max => 2, rate_limit_window => '1 day');
INSERT INTO public.upgrade_keys
SELECT 'quota_and_rate', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'both',
    remaining => 20, rate_limit_max => 100, rate_limit_window => '1 day');
INSERT INTO public.upgrade_keys
SELECT 'rotated_old', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'rotating',
    permissions => '{"api": ["read"]}', remaining => 40);
INSERT INTO public.upgrade_keys
SELECT 'rotated_away', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'rotated without grace');
INSERT INTO public.upgrade_keys
SELECT 'revoked', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'revoked');
INSERT INTO public.upgrade_keys
SELECT 'expiring', key, key_id FROM apikey.create_api_key(user_id => 'upg_bob', name => 'expires soon',
    expires_at => clock_timestamp() + interval '1 second');
INSERT INTO public.upgrade_keys
SELECT 'future_expiry', key, key_id FROM apikey.create_api_key(user_id => 'upg_bob', name => 'expires later',
    expires_at => '2999-01-01 00:00:00+00');
INSERT INTO public.upgrade_keys
SELECT 'disabled', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'disabled');
INSERT INTO public.upgrade_keys
SELECT 'deleted', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'deleted');
RESET ROLE;

-- An admin makes an org key as herself; a user makes his own key.
SET ROLE upg_alice;
INSERT INTO public.upgrade_keys
SELECT 'org_by_admin', key, key_id FROM apikey.create_api_key(org_id => 'acme', name => 'alice for acme');
RESET ROLE;
SET ROLE upg_bob;
INSERT INTO public.upgrade_keys
SELECT 'user_by_self', key, key_id FROM apikey.create_api_key(name => 'bob by himself');
RESET ROLE;

-- Keys made through a gateway identity (PostgREST style: a role whose identity is a
-- JWT claim).
SELECT apikey.current_identity() IS NULL AS superuser_has_no_identity;
SET apikey.gateway_roles = 'upg_web';
SET ROLE upg_web;
SELECT set_config('request.jwt.claims', '{"sub": "gw-user-1"}', false) IS NOT NULL AS claims;
INSERT INTO public.upgrade_keys
SELECT 'gateway_user', key, key_id FROM apikey.create_api_key(name => 'gateway user key');
INSERT INTO public.upgrade_keys
SELECT 'gateway_org', key, key_id FROM apikey.create_api_key(org_id => 'globex', name => 'gateway org key');
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL AS claims_cleared;
RESET ROLE;
RESET apikey.gateway_roles;

-- Usage: a part-spent quota, an exhausted one, a refill that is due, a rate limit in
-- the middle of its window and one at its limit.
-- (One verify per loop turn: a set-returning call that does not depend on the row of
-- generate_series would be run once and its result reused.)
DO $use$
DECLARE
    uses constant jsonb := '{"quota_part_spent": 3, "quota_exhausted": 1, "refill_due": 2, "refill_later": 2,
                             "rate_mid_window": 2, "rate_at_limit": 2, "quota_and_rate": 4,
                             "org_plain": 1, "user_plain": 1}';
    k record;
BEGIN
    FOR k IN SELECT u.label, u.key, (uses ->> u.label)::int AS n FROM public.upgrade_keys u WHERE uses ? u.label LOOP
        FOR i IN 1 .. k.n LOOP
            PERFORM FROM apikey.verify_api_key(k.key);
        END LOOP;
    END LOOP;
END
$use$;

-- Lifecycle: rotation in its grace period, rotation without grace, revoked, disabled,
-- deleted, renamed.
SET ROLE upg_backend;
INSERT INTO public.upgrade_keys
SELECT 'rotated_new', r.key, r.key_id FROM public.upgrade_keys k, LATERAL apikey.rotate_api_key(k.key_id, grace => '7 days') r
 WHERE k.label = 'rotated_old';
INSERT INTO public.upgrade_keys
SELECT 'rotated_away_new', r.key, r.key_id FROM public.upgrade_keys k, LATERAL apikey.rotate_api_key(k.key_id) r
 WHERE k.label = 'rotated_away';
SELECT r.revoked_at IS NOT NULL AS revoked FROM public.upgrade_keys k, LATERAL apikey.revoke_api_key(k.key_id) r WHERE k.label = 'revoked';
SELECT u.enabled FROM public.upgrade_keys k, LATERAL apikey.update_api_key(k.key_id, enabled => false) u WHERE k.label = 'disabled';
SELECT u.name FROM public.upgrade_keys k, LATERAL apikey.update_api_key(k.key_id, name => 'ci deploy (renamed)') u WHERE k.label = 'org_plain';
SELECT apikey.delete_api_key(k.key_id) FROM public.upgrade_keys k WHERE k.label = 'deleted';
SELECT removed FROM apikey.remove_member('globex', 'upg_alice') removed;
RESET ROLE;

-- Let the short expiry pass and the one-second refill come due.
SELECT pg_sleep(1.2);
