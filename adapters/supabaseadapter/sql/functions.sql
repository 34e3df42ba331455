-- Functions and procedures of schema $1 (no aggregates or window functions),
-- without those an extension owns, with their full CREATE OR REPLACE text.
SELECT p.proname,
       pg_catalog.pg_get_function_identity_arguments(p.oid),
       COALESCE(pg_catalog.pg_get_function_result(p.oid), ''),
       l.lanname,
       p.prokind::text,
       pg_catalog.pg_get_functiondef(p.oid)
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE n.nspname = $1
  AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY p.proname, 2;
