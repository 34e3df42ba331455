package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/uuid"
)

// noopRunbook does nothing in its phases: a run costs only what the daemon
// itself does (claim, five phase writes, events, steps, finish).
type noopRunbook struct{}

func (noopRunbook) Validate(context.Context, *executor.RunContext) error  { return nil }
func (noopRunbook) Preflight(context.Context, *executor.RunContext) error { return nil }
func (noopRunbook) Action(context.Context, *executor.RunContext) error    { return nil }
func (noopRunbook) Verify(context.Context, *executor.RunContext) error    { return nil }
func (noopRunbook) Summarize(context.Context, *executor.RunContext) error { return nil }

// marks are the moments one sampled run reached, as the daemon saw them.
type marks struct {
	claimed    chan [2]time.Time // the claim call's start and return
	firstEvent chan time.Time
	finished   chan time.Time
	seen       chan struct{} // closed once the first event is stored
}

// tracker routes the observed store's callbacks to the sampled runs.
type tracker struct {
	mu   sync.Mutex
	runs map[string]*marks
}

func newTracker() *tracker { return &tracker{runs: map[string]*marks{}} }

func (t *tracker) expect(id string) *marks {
	m := &marks{claimed: make(chan [2]time.Time, 1), firstEvent: make(chan time.Time, 1),
		finished: make(chan time.Time, 1), seen: make(chan struct{})}
	t.mu.Lock()
	t.runs[id] = m
	t.mu.Unlock()
	return m
}

func (t *tracker) get(id string) *marks {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs[id]
}

func (t *tracker) forget(id string) {
	t.mu.Lock()
	delete(t.runs, id)
	t.mu.Unlock()
}

func put[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func (t *tracker) onClaim(runs []*executor.Run, began, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range runs {
		if m := t.runs[r.ID]; m != nil {
			put(m.claimed, [2]time.Time{began, at})
		}
	}
}

func (t *tracker) onEvents(events []executor.Event, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ev := range events {
		if m := t.runs[ev.RunID]; m != nil {
			select {
			case <-m.seen:
			default:
				close(m.seen)
				put(m.firstEvent, at)
			}
		}
	}
}

func (t *tracker) onFinish(f executor.Finish, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.runs[f.RunID]; m != nil {
		put(m.finished, at)
	}
}

// waitingRunbook holds a sampled run in validate until its first event is
// stored: a no-op run would otherwise end at once, and the Writer.Sync of
// its finish would flush that event early, hiding the writer's own delay.
type waitingRunbook struct {
	noopRunbook
	m *marks
}

func (w waitingRunbook) Validate(ctx context.Context, _ *executor.RunContext) error {
	if w.m == nil {
		return nil
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-w.m.seen:
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

func (t *tracker) resolver() executor.Resolver {
	return executor.ResolverFunc(func(_ context.Context, run *executor.Run) (executor.Runbook, error) {
		return waitingRunbook{m: t.get(run.ID)}, nil
	})
}

// sample is one pickup measurement, all from just before the INSERT.
type sample struct {
	inserted   time.Duration // the INSERT (and, by webhook, the POST) returned
	claimBegan time.Duration // the claim call that took the run began
	claimed    time.Duration // and returned
	firstEvent time.Duration // the insert holding its first event returned
}

// pickupPaths are the ways a daemon learns of a new run.
var pickupPaths = []struct{ key, label string }{
	{"notify", "LISTEN/NOTIFY (direct store)"},
	{"webhook", "webhook (REST store)"},
	{"poll", "poll (direct store, no wake-ups)"},
}

const webhookSecret = "opsd-bench-webhook-secret"

// runPickup inserts one run at a time into an idle lane and measures, from
// just before the INSERT, until the daemon's claim call returned it and
// until the insert holding its first event returned (see observed).
func runPickup(ctx context.Context, e *env, res *ScenarioResult) error {
	sc, err := e.newScratch(ctx, "pickup")
	if err != nil {
		return err
	}
	defer sc.close()
	targets := map[string]map[string]float64{"notify": {"p50": 1, "p99": 5}, "webhook": {"p50": 5}}
	if res.opsd {
		for _, p := range pickupPaths {
			if p.key == "webhook" && e.o.PostgREST == nil {
				res.note("webhook path skipped: %s", noPostgREST)
				continue
			}
			e.progress("pickup: %s, %d samples", p.key, e.o.Samples)
			ss, err := e.pickupPath(ctx, sc, p.key, e.o.Samples)
			if err != nil {
				return fmt.Errorf("%s: %w", p.key, err)
			}
			res.latencies("pickup "+p.label, pick(ss, func(s sample) time.Duration { return s.claimed }), false, targets[p.key])
			res.latencies("first event "+p.label, pick(ss, func(s sample) time.Duration { return s.firstEvent }), false, nil)
			res.Counts["samples_"+p.key] = int64(len(ss))
			res.note("%s, where the time goes (p50 / p99): INSERT%s returned %s; then until the claim call began %s; the claim call %s",
				p.key, map[bool]string{true: " and POST /v1/wake", false: ""}[p.key == "webhook"],
				p5099(ss, func(s sample) time.Duration { return s.inserted }),
				p5099(ss, func(s sample) time.Duration { return s.claimBegan - s.inserted }),
				p5099(ss, func(s sample) time.Duration { return s.claimed - s.claimBegan }))
		}
		res.note("pickup = from just before the INSERT of a run into an idle lane to the return of the daemon's claim call that claimed it; first event = to the return of the insert holding the run's first event row (the run waits in validate until then, so the writer's flush delay shows). Both are stamped in this process by a wrapper around the daemon's store: no observer polls the database")
		res.note("LISTEN/NOTIFY and poll use the direct store%s", map[bool]string{true: "", false: "; webhook uses the REST store through the PostgREST it is given (opsbench: the PostgREST-compatible test server), and the inserting side POSTs a Supabase Database Webhook body to the daemon's /v1/wake after its INSERT returns (Supabase's own webhook delivery, pg_net, is not included). Those two daemons poll only every 30s"}[e.o.PostgREST == nil])
		res.note("poll: a store wrapper whose Wakeups returns nil; poll interval %s (poll_interval = poll_max_interval; each wait is jittered over [%s, %s)); each run is inserted at a random moment of the poll cycle", e.o.PollInterval, e.o.PollInterval/2, e.o.PollInterval*3/2)
	}
	if res.baseline {
		e.progress("pickup: original design, %d samples", e.o.BaselineSamples)
		claims, firsts, err := baselinePickup(ctx, sc, e.o.BaselineSamples)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		res.Counts["samples_baseline"] = int64(len(claims))
		labels := []string{"(original: poll every 800 ms)"}
		if res.opsd {
			labels = labels[:0]
			for _, p := range pickupPaths {
				labels = append(labels, p.label)
			}
		}
		for _, l := range labels {
			res.latencies("pickup "+l, claims, true, nil)
			res.latencies("first event "+l, firsts, true, nil)
		}
		res.note("original design: one poll every 800 ms claiming one run (claim_runs), each event an awaited INSERT; %d samples inserted at random moments of the poll cycle", len(claims))
	}
	return nil
}

func pick(ss []sample, f func(sample) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func p5099(ss []sample, f func(sample) time.Duration) string {
	d := pick(ss, f)
	slices.Sort(d)
	return fmt.Sprintf("%.2f / %.2f ms", ms(percentile(d, 0.5)), ms(percentile(d, 0.99)))
}

// pickupPath samples one wake-up path with a daemon of its own.
func (e *env) pickupPath(ctx context.Context, sc *scratch, path string, n int) ([]sample, error) {
	tr := newTracker()
	obs := &observed{noWakeups: path == "poll", claimed: tr.onClaim, appended: tr.onEvents, finished: tr.onFinish}
	cfg := benchConfig("bench-pickup-"+path, 4)
	if path == "poll" {
		cfg.PollInterval, cfg.PollMaxInterval = e.o.PollInterval, e.o.PollInterval
	}
	var wake func(ctx context.Context, id string) error
	if path == "webhook" {
		rs, err := e.openREST(ctx, sc)
		if err != nil {
			return nil, err
		}
		defer rs.close()
		sc = rs.sc // runs go where the PostgREST reads them
		st, err := rs.store()
		if err != nil {
			return nil, err
		}
		defer st.Close()
		obs.Store = st
	} else {
		st, err := openPG(ctx, sc.URL, 10)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		obs.Store = st
	}
	d, err := startDaemon(cfg, obs, tr.resolver(), e.o.Log)
	if err != nil {
		return nil, err
	}
	defer d.stop() //nolint:errcheck
	if path == "webhook" {
		hs, err := serveHTTP(d.Handler(executor.HTTPConfig{WebhookSecret: webhookSecret}))
		if err != nil {
			return nil, err
		}
		defer hs.close()
		transport := &http.Transport{}
		defer transport.CloseIdleConnections()
		client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
		wake = func(ctx context.Context, id string) error { return postWake(ctx, client, hs.URL, id) }
	}

	var out []sample
	const warmup = 3 // connections, prepared statements, the first wake-up
	for i := -warmup; i < n; i++ {
		// An idle daemon: its claim after the last finish is done, and its
		// event writer has been quiet for a flush interval (50 ms).
		gap := 60 * time.Millisecond
		if path == "poll" {
			gap += rand.N(e.o.PollInterval)
		}
		time.Sleep(gap)
		id := uuid.New()
		m := tr.expect(id)
		t0 := time.Now()
		if _, err := sc.Pool.Exec(ctx, `INSERT INTO runs (id, env, kind, lane, intent) VALUES ($1, 'dev', 'healthcheck', 'A', 'bench pickup')`, id); err != nil {
			return nil, fmt.Errorf("insert run: %w", err)
		}
		if wake != nil {
			if err := wake(ctx, id); err != nil {
				return nil, err
			}
		}
		inserted := time.Since(t0)
		claimed, err := recv(ctx, m.claimed, 30*time.Second, "the claim of run "+id)
		if err != nil {
			return nil, err
		}
		first, err := recv(ctx, m.firstEvent, 30*time.Second, "the first event of run "+id)
		if err != nil {
			return nil, err
		}
		if _, err := recv(ctx, m.finished, 30*time.Second, "the finish of run "+id); err != nil {
			return nil, err
		}
		if err := waitUntil(ctx, 10*time.Second, time.Millisecond, "an idle daemon", func() (bool, error) {
			return d.InFlight() == 0, nil
		}); err != nil {
			return nil, err
		}
		tr.forget(id)
		if i >= 0 {
			out = append(out, sample{inserted: inserted, claimBegan: claimed[0].Sub(t0),
				claimed: claimed[1].Sub(t0), firstEvent: first.Sub(t0)})
		}
	}
	return out, nil
}

// postWake sends what a Supabase Database Webhook on INSERT into runs sends.
func postWake(ctx context.Context, c *http.Client, base, id string) error {
	body := fmt.Sprintf(`{"type":"INSERT","table":"runs","schema":"public","record":{"id":%q,"lane":"A","status":"queued"},"old_record":null}`, id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/wake", bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+webhookSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("POST /v1/wake: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /v1/wake: %s", resp.Status)
	}
	return nil
}
