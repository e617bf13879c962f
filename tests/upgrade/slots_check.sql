-- The budget slots and the totals they make up, compared before and after pg_upgrade.
\pset footer off
SELECT u.label, count(*) AS slots, sum(s.quota) AS held
  FROM apikey.key_slots s JOIN public.upgrade_keys u ON u.key_id = s.key_id
 GROUP BY u.label ORDER BY u.label;
SELECT owner_id, count(*) AS slots, sum(quota) AS held FROM apikey.owner_slots GROUP BY owner_id ORDER BY owner_id;
SELECT k.label, g.remaining
  FROM public.upgrade_keys k, LATERAL apikey.get_api_key(k.key_id) g
 WHERE k.label IN ('quota_part_spent', 'owner_slotted') ORDER BY k.label;
SELECT remaining FROM apikey.get_owner_limits(org_id => 'slotted');
\pset tuples_only on
SELECT 'budget slots as made: ' || ((SELECT count(*) FROM apikey.key_slots) = 2
    AND (SELECT count(*) FROM apikey.owner_slots) = 2
    AND (SELECT g.remaining FROM public.upgrade_keys k, LATERAL apikey.get_api_key(k.key_id) g
          WHERE k.label = 'quota_part_spent') = 7
    AND (SELECT remaining FROM apikey.get_owner_limits(org_id => 'slotted')) = 97)::text;
\pset tuples_only off
-- The usage rows, compared before and after pg_upgrade.
SELECT u.label, h.hour AT TIME ZONE 'UTC' AS hour_utc, h.code, h.calls, h.cost
  FROM apikey.usage_hours h LEFT JOIN public.upgrade_keys u ON u.key_id = h.key_id
 ORDER BY h.hour, h.code;
\pset tuples_only on
SELECT 'usage rows as made: ' || ((SELECT count(*) FROM apikey.usage_hours) = 3
    AND (SELECT sum(calls) FROM apikey.usage_hours) = 1257)::text;
\pset tuples_only off
