// Package e2e holds the tests that run opsd as real processes against a
// real PostgreSQL: kill -9 recovery and graceful shutdown with runs in flight.
package e2e
