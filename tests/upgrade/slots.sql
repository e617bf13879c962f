-- Budget slots (0.3.0) as a contended key and a contended organization leave them, for
-- the pg_upgrade test: part of what is left moved from the row into slots, the totals
-- unchanged. Run after dataset.sql on a current install, before answers.sql.
\set ON_ERROR_STOP 1
-- A key whose quota is spread over its row and two slots (7 left: 3 + 2 + 2).
WITH k AS (SELECT key_id FROM public.upgrade_keys WHERE label = 'quota_part_spent'),
     moved AS (UPDATE apikey.keys SET remaining = remaining - 4 FROM k WHERE id = k.key_id RETURNING id)
INSERT INTO apikey.key_slots (key_id, slot, quota, windows, by_cost, due_at, used_at)
SELECT moved.id, g, 2, '{}', '{}', NULL, now() FROM moved, generate_series(0, 1) g;
-- An organization's quota of 100, 3 spent by its key, 40 of the 97 left in two slots.
SELECT apikey.create_organization('slotted') IS NOT NULL AS created;
SELECT apikey.set_owner_limits(org_id => 'slotted', remaining => 100);
INSERT INTO public.upgrade_keys
SELECT 'owner_slotted', key, key_id FROM apikey.create_api_key(org_id => 'slotted', name => 'shares a plan');
SELECT count(*) FILTER (WHERE v.valid) AS admitted
  FROM public.upgrade_keys k, generate_series(1, 3) g,
       LATERAL apikey.verify_api_key(CASE WHEN g > 0 THEN k.key END) v
 WHERE k.label = 'owner_slotted';
UPDATE apikey.owner_limits SET remaining = remaining - 40 WHERE owner_kind = 'org' AND owner_id = 'slotted';
INSERT INTO apikey.owner_slots (owner_kind, owner_id, slot, quota, windows, by_cost, due_at, used_at)
SELECT 'org', 'slotted', g, 20, '{}', '{}', NULL, now() FROM generate_series(0, 1) g;
-- Usage analytics (0.3.0): hourly rows as the usage writer leaves them (this cluster does
-- not preload the library, so they are written here as the writer would), kept by pg_upgrade.
INSERT INTO apikey.usage_hours (key_id, org_id, user_id, hour, code, calls, cost)
SELECT k.key_id, 'slotted', NULL, timestamptz '2026-11-30 23:00+00', c.code, c.calls, c.cost
  FROM public.upgrade_keys k,
       (VALUES ('VALID', 1200, 3600), ('RATE_LIMITED', 17, 0)) AS c (code, calls, cost)
 WHERE k.label = 'owner_slotted'
UNION ALL
SELECT NULL, NULL, NULL, timestamptz '2026-12-01 00:00+00', 'KEY_NOT_FOUND', 40, 0;
