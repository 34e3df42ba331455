-- Primary key, unique, foreign key, check and exclusion constraints of the
-- tables of schema $1 (NOT NULL is a column property here, also on
-- PostgreSQL 18 where it became a constraint).
SELECT t.relname, k.conname, k.contype::text, pg_catalog.pg_get_constraintdef(k.oid, true)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class t ON t.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = $1
  AND t.relkind IN ('r', 'p')
  AND k.contype IN ('p', 'u', 'f', 'c', 'x')
ORDER BY t.relname, k.conname;
