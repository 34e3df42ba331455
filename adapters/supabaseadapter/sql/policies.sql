-- Row level security policies of the tables of schema $1.
SELECT tablename, policyname, permissive, roles::text[], cmd,
       COALESCE(qual, ''), COALESCE(with_check, '')
FROM pg_catalog.pg_policies
WHERE schemaname = $1
ORDER BY tablename, policyname;
