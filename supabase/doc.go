// Package supabase is opsd's store, reached two ways over one PostgreSQL
// schema. Its subpackages hold the parts:
//
//   - migrations: the schema, as the .sql files the Supabase CLI applies
//     (`supabase db push`), embedded and applied by `opsd migrate`;
//   - pgstore: the store over a direct PostgreSQL connection;
//   - reststore: the store over PostgREST with the service-role key;
//   - internal/wire: the rows and arguments both stores encode alike;
//   - storetest: the contract both stores pass;
//   - storage: Supabase Storage, where artifacts too large for a row go.
//
// The tests of this package exercise both stores and the SQL beneath them:
// the permission matrix of every role, red-team attempts, the SQL functions.
package supabase
