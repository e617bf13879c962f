-- The SQL interface as docs/sql-contract.md gives it, pinned: every function's arguments
-- in order (name, type, default), its result (the columns of RETURNS TABLE, or a type),
-- its volatility, and that no function with arguments is STRICT (a NULL argument is
-- answered with 22023, or by verify's KEY_NOT_FOUND row, never skipped with a NULL result;
-- pgrx declares a function without arguments STRICT, which changes nothing). The Rust
-- declarations (each #[pg_extern] of src/api/, with default!(…) arguments and name!(…)
-- result columns), sql/verify.sql and every update script must produce exactly these.
SELECT p.proname, p.provolatile AS volatility, p.proisstrict AS strict, p.proretset AS set_returning
  FROM pg_proc p
 WHERE p.pronamespace = 'apikey'::regnamespace
   AND p.prorettype <> 'trigger'::regtype   -- the tables' triggers are not the interface
 ORDER BY p.proname;

-- Each argument and each result column, in order. (No default or type here holds a
-- comma, so ', ' separates them.)
WITH f AS (
  SELECT p.proname, pg_get_function_arguments(p.oid) AS args,
         regexp_replace(pg_get_function_result(p.oid), '^TABLE\((.*)\)$', '\1') AS result
    FROM pg_proc p
   WHERE p.pronamespace = 'apikey'::regnamespace AND p.prorettype <> 'trigger'::regtype)
SELECT f.proname, 'argument' AS part, a.n, a.item
  FROM f, regexp_split_to_table(f.args, ', ') WITH ORDINALITY a(item, n)
 WHERE f.args <> ''
UNION ALL
SELECT f.proname, 'result', r.n, r.item
  FROM f, regexp_split_to_table(f.result, ', ') WITH ORDINALITY r(item, n)
 ORDER BY 1, 2, 3;
