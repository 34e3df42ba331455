package chaos

import (
	"time"

	"github.com/opscontrolroom/opsd/internal/postgresttest"
)

// The driver's actions: faults, runs, cancels and daemon stops.

// injectFaults adds probabilistic rules for the chaos's length: each REST
// request has FaultRate chance of each kind.
func (h *harness) injectFaults(d time.Duration) {
	p := h.cfg.FaultRate
	for _, f := range []postgresttest.Fault{
		{Kind: postgresttest.FaultStatus, Status: 503, Probability: p, For: d},
		{Kind: postgresttest.FaultStatus, Status: 500, Probability: p / 2, For: d, Body: "<html>internal error</html>"},
		{Kind: postgresttest.FaultRateLimit, RetryAfter: time.Second, Probability: p, For: d},
		{Kind: postgresttest.FaultLatency, Delay: 400 * time.Millisecond, Probability: 2 * p, For: d},
		{Kind: postgresttest.FaultDrop, Probability: p, For: d},
		{Kind: postgresttest.FaultLoseResponse, Probability: p, For: d},
	} {
		h.rest.Inject(f)
	}
}

func (h *harness) pick() *template {
	total := 0
	for _, tp := range h.templates {
		total += tp.weight
	}
	n := h.rng.IntN(total)
	for _, tp := range h.templates {
		if n < tp.weight {
			return tp
		}
		n -= tp.weight
	}
	return h.templates[0]
}

// enqueue inserts a run as the frontend would, over the direct connection
// (the driver's own writes must not suffer the injected faults).
func (h *harness) enqueue() {
	tp := h.pick()
	var session *string
	if h.rng.Float64() < 0.6 {
		session = &h.sessions[h.rng.IntN(len(h.sessions))]
	}
	var timeout *int
	if tp.timeout > 0 {
		timeout = &tp.timeout
	}
	lane := string(rune('A' + h.rng.IntN(4)))
	ctx, cancel := h.ctx()
	defer cancel()
	var id string
	err := h.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, template_id, session_id, lane, priority, max_attempts, timeout_seconds, intent)
		VALUES ('dev', 'healthcheck', $1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		tp.id, session, lane, 1+h.rng.IntN(200), 1+h.rng.IntN(3), timeout, "chaos "+tp.slug).Scan(&id)
	if err != nil {
		h.t.Fatalf("chaos: enqueue: %v", err)
	}
	h.enqueued = append(h.enqueued, id)
}

// cancel cancels a random queued or (mostly) running run, by cancel_run or
// by the UPDATE the frontend also uses.
func (h *harness) cancel() {
	statuses := []string{"running"}
	if h.rng.Float64() < 0.3 {
		statuses = []string{"queued"}
	}
	ctx, cancel := h.ctx()
	defer cancel()
	var id, status string
	if err := h.db.Pool.QueryRow(ctx, `SELECT id, status FROM runs WHERE status = ANY($1) ORDER BY random() LIMIT 1`,
		statuses).Scan(&id, &status); err != nil {
		return // nothing to cancel
	}
	c := cancelRecord{runID: id, was: status, at: time.Now(), method: "rpc"}
	if h.rng.Float64() < 0.5 {
		err := h.db.Pool.QueryRow(ctx, `SELECT cancel_run($1)`, id).Scan(&c.ok)
		if err != nil {
			h.t.Fatalf("chaos: cancel_run: %v", err)
		}
	} else {
		c.method = "update"
		tag, err := h.db.Pool.Exec(ctx, `UPDATE runs SET status = 'canceled' WHERE id = $1 AND status IN ('queued', 'running')`, id)
		if err != nil {
			h.t.Fatalf("chaos: cancel by update: %v", err)
		}
		c.ok = tag.RowsAffected() == 1
	}
	h.cancels = append(h.cancels, c)
}

// stopOne SIGKILLs (or SIGTERMs) a random running daemon, keeping at least
// one direct-store daemon alive so that stale runs are always reaped, even
// during a REST outage.
func (h *harness) stopOne(now time.Time) {
	var candidates []int
	directAlive := 0
	for i, p := range h.slots {
		if p.alive() && p.termed.IsZero() {
			candidates = append(candidates, i)
			if p.store == storeDirect {
				directAlive++
			}
		}
	}
	h.rng.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	for _, i := range candidates {
		p := h.slots[i]
		if p.store == storeDirect && directAlive <= 1 {
			continue
		}
		if h.rng.Float64() < h.cfg.TermShare {
			p.term()
			h.terms++
			h.cfg.Logf("chaos: SIGTERM %s at +%s", p.worker, now.Sub(h.began).Round(time.Millisecond))
			return
		}
		p.kill()
		h.kills++
		h.restartAt[i] = now.Add(time.Duration(h.rng.Int64N(int64(time.Second))))
		h.cfg.Logf("chaos: SIGKILL %s at +%s", p.worker, now.Sub(h.began).Round(time.Millisecond))
		return
	}
}
