// Package pgstore is the executor.Store over a direct PostgreSQL connection
// (pgx): the project's direct connection or its session pooler. It calls the
// SQL functions of supabase/migrations, pushes wakeups with LISTEN/NOTIFY,
// and translates PostgreSQL errors into the executor's typed errors.
package pgstore
