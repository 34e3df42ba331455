// Package chaos is opsd's chaos harness. It runs several `opsd run`
// processes against one real PostgreSQL, some on the direct store and some
// through the PostgREST test server with faults injected (5xx, 429 with
// Retry-After, latency, dropped connections, lost responses and an outage),
// while a driver enqueues template runs over sessions and lanes, cancels some
// at random, and SIGKILLs and restarts daemons. When the chaos ends it lets
// the queue drain and checks, from the database rows and the daemons' logs,
// the invariants opsd promises:
//
//   - every run ends terminal (none stuck running), and the runs of a killed
//     daemon are reaped within stale-after plus the reaper period;
//   - no run is executed by two attempts at once, and no lane of a session
//     runs two runs at once;
//   - each run's events are numbered 1..n without gaps, and a finished run's
//     last event is its final System event;
//   - a cancel stops a run within the heartbeat interval plus a second, or,
//     when its daemon died, the reaper finalizes it.
//
// The results are printed as a table (Report.Table). The test in this
// package runs a short chaos by default (about 20 s of chaos) and a soak with
// OPSD_CHAOS_LONG=1 or -long; see chaos_test.go.
package chaos
