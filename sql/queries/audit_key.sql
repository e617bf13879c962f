-- An action on a key: the key's public fields as they are now (never its digest),
-- $5 merged in, and the jsonb settings given ($6 names, $7 values) added to $5's
-- "changes" as the jsonb values they are.
INSERT INTO apikey.audit_log (action, org_id, key_id, actor_role, actor_identity, details)
SELECT $1, k.org_id, k.id, $3, $4,
       jsonb_build_object('key', to_jsonb(apikey.key_info_of(k, apikey.key_held(k.id))))
       || coalesce($5, '{}'::jsonb)
       || CASE WHEN coalesce(cardinality($6), 0) = 0 THEN '{}'::jsonb
               ELSE jsonb_build_object('changes',
                        coalesce($5 -> 'changes', '{}'::jsonb)
                        || (SELECT jsonb_object_agg(g.name, g.value)
                              FROM unnest($6::text[], $7::jsonb[]) AS g (name, value)))
          END
  FROM apikey.keys k
 WHERE k.id = $2;
