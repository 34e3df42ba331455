-- Indexes of the tables of schema $1, except those backing a primary key,
-- unique or exclusion constraint of the same table (the constraint stands
-- for them).
SELECT t.relname, i.relname, pg_catalog.pg_get_indexdef(i.oid)
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = $1
  AND t.relkind IN ('r', 'p')
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_constraint k
    WHERE k.conindid = i.oid AND k.conrelid = t.oid AND k.contype IN ('p', 'u', 'x'))
ORDER BY t.relname, i.relname;
