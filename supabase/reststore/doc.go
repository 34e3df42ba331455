// Package reststore is the executor.Store over Supabase's PostgREST API with
// the service-role key, for daemons that cannot reach the database directly.
// It calls the same SQL functions as pgstore (as RPCs), retries only what is
// safe to repeat, and translates PostgREST errors into the executor's typed
// errors. It cannot push wakeups: the daemon polls.
package reststore
