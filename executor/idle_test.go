package executor_test

import (
	"testing"
	"time"
)

// TestIdleExit: with IdleExit set, Idle closes once nothing has been in
// flight or claimed for that long, and not while a run is executing.
func TestIdleExit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tpl := e.template("nap", sleepTemplate("action", "1500ms"))
	cfg := fastConfig("")
	// Long enough that a loaded machine still claims the queued run before
	// the daemon could call itself idle.
	cfg.IdleExit = 2 * time.Second
	id := e.submit(tpl, nil, "A", 100, "")
	began := time.Now()
	d := e.startDaemon(cfg, nil)
	select {
	case <-d.Idle():
	case <-time.After(20 * time.Second):
		t.Fatal("Idle never closed")
	}
	status, _ := runRow(t, e.db.Pool, id)
	if status != "success" {
		t.Fatalf("Idle closed while the run was %s: a run in flight must keep the daemon up", status)
	}
	if since := time.Since(began); since < 3500*time.Millisecond {
		t.Fatalf("Idle closed after %s: before the 1.5 s run plus the 2 s idle period", since)
	}
}
