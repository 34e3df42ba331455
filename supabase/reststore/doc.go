// Package reststore is opsd's store over Supabase's PostgREST API with the
// service-role key, for daemons that cannot reach the database directly. It
// implements the same executor interfaces as pgstore (Store, OperatorStore,
// Operations, ApproverStore) by calling the same SQL functions as RPCs,
// retries only what is safe to repeat, and translates PostgREST errors into
// the executor's typed errors. It cannot push wakeups: the daemon polls.
package reststore
