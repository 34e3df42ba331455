// Package pgstore is opsd's store over a direct PostgreSQL connection (pgx):
// the project's direct connection or its session pooler. It implements the
// executor's store interfaces (Store for the daemon; OperatorStore,
// Operations and ApproverStore for the operator commands) by calling the SQL
// functions of supabase/migrations, pushes wakeups with LISTEN/NOTIFY, and
// translates PostgreSQL errors into the executor's typed errors.
package pgstore
