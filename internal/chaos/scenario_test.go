package chaos

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCutOffDaemon replays, on purpose, what the chaos finds by chance: a
// REST daemon is in a long preflight when Supabase's API goes down for
// longer than stale-after. The direct daemon's reaper requeues the run (it
// has attempts left) and claims it again. The cut-off daemon must have
// stopped by then; it learns it lost the lease only when the API is back.
func TestCutOffDaemon(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{Binary: opsdBin, Direct: 1, REST: 1, Logf: t.Logf})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var tpl, run string
	yaml := "version: 1\nsteps:\n" + sleepStep("nap", "preflight", "6s") + step("work", "action", "noop", "")
	must(t, h.db.Pool.QueryRow(ctx, `INSERT INTO run_templates (slug, title, template_yaml) VALUES ('six-second-preflight', 'x', $1) RETURNING id`, yaml).Scan(&tpl))

	h.start(1, "--lanes", "B") // REST
	must(t, h.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, template_id, lane, max_attempts) VALUES ('dev', 'healthcheck', $1, 'B', 2) RETURNING id`, tpl).Scan(&run))
	waitUntil(t, 20*time.Second, "the REST daemon in the run's preflight", func() bool {
		var phase, by string
		_ = h.db.Pool.QueryRow(ctx, `SELECT coalesce(phase, ''), coalesce(claimed_by, '') FROM runs WHERE id = $1`, run).Scan(&phase, &by)
		return phase == "preflight" && strings.HasPrefix(by, "rest")
	})
	h.start(0, "--lanes", "B") // direct: reaps and claims
	h.rest.Outage(5 * time.Second)
	h.outages = append(h.outages, time.Now())
	waitUntil(t, 20*time.Second, "the direct daemon to claim the requeued run", func() bool {
		var by string
		var attempt int
		_ = h.db.Pool.QueryRow(ctx, `SELECT coalesce(claimed_by, ''), attempt FROM runs WHERE id = $1`, run).Scan(&by, &attempt)
		return attempt == 2 && strings.HasPrefix(by, "direct")
	})
	waitUntil(t, 30*time.Second, "the run to finish", func() bool {
		var fin bool
		_ = h.db.Pool.QueryRow(ctx, `SELECT finished_at IS NOT NULL FROM runs WHERE id = $1`, run).Scan(&fin)
		return fin
	})
	h.enqueued = append(h.enqueued, run)
	h.ended = time.Now()
	h.drain()
	h.stopAll()
	rep := h.check()
	t.Log(rep.Table())
	failOnViolations(t, rep)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
