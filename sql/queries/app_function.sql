-- What the catalog says of the function a membership setting names ($1, a signature such
-- as 'app.member_roles(text,text)'), for the checks in src/membership.rs.
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname) AS qualified,
       p.prorettype = $2 AS returns_expected,
       coalesce((SELECT bool_or(c LIKE 'search_path=%') FROM pg_catalog.unnest(p.proconfig) c), false)
           AS pins_search_path,
       p.proowner AS owner,
       n.oid = pg_catalog.pg_my_temp_schema() OR n.nspname LIKE 'pg\_temp\_%' AS temporary
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE p.oid = pg_catalog.to_regprocedure($1);
