// Package supabase is opsd's store, reached two ways over one PostgreSQL
// schema. Its subpackages hold the parts:
//
//   - migrations: the schema, as the .sql files the Supabase CLI applies
//     (`supabase db push`), embedded and applied by `opsd migrate`;
//   - pgstore: executor.Store over a direct PostgreSQL connection;
//   - reststore: executor.Store over PostgREST with the service-role key;
//   - storetest: the contract both stores pass;
//   - storage: Supabase Storage, where artifacts too large for a row go.
//
// The tests of this package exercise both stores and the SQL beneath them:
// the permission matrix of every role, red-team attempts, the SQL functions.
package supabase
