package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/uuid"
)

// baselinePoll is how often the original executor looked for queued runs.
const baselinePoll = 800 * time.Millisecond

// original re-enacts, in Go, how the Deno ops-executor worked, so that its
// numbers come from the same machine and the same run as opsd's:
//
//   - it polls for queued runs every 800 ms and takes one run per poll
//     (claim_runs(worker, 1), the claim the Deno code called), then runs it
//     to the end before it polls again;
//   - before every step it re-reads the run's status (a SELECT);
//   - every event is one awaited INSERT: no batching, no coalescing;
//   - the run ends with complete_run.
//
// A run has the shape of opsd's no-op template run: a "claimed" event; per
// phase a status read, "started", one step event and "done"; one artifact;
// a final event (17 event rows). It writes no run_steps and no phase column,
// which the original design did not have.
type original struct {
	pool   *pgxpool.Pool
	events executor.Store // each event is one AppendEvents call of one row
	worker string

	claimed    func(id string, at time.Time)
	firstEvent func(id string, at time.Time)
	finished   func(id string, at time.Time)
}

var baselinePhases = []string{"validate", "preflight", "action", "verify", "summarize"}

// loop polls until ctx is done.
func (o *original) loop(ctx context.Context) error {
	t := time.NewTicker(baselinePoll)
	defer t.Stop()
	for {
		id, ok, err := o.claim(ctx)
		if err == nil && ok {
			err = o.execute(ctx, id)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (o *original) claim(ctx context.Context) (string, bool, error) {
	var id string
	err := o.pool.QueryRow(ctx, `SELECT id::text FROM public.claim_runs($1, 1)`, o.worker).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("claim_runs: %w", err)
	}
	if o.claimed != nil {
		o.claimed(id, time.Now())
	}
	return id, true, nil
}

func (o *original) execute(ctx context.Context, id string) error {
	seq := 0
	emit := func(level, msg string) error {
		seq++
		ev := executor.Event{RunID: id, Seq: seq, TS: time.Now(), Level: level, Source: "System", Message: msg, Attempt: 1}
		if _, err := o.events.AppendRows(ctx, o.worker, executor.Rows{Events: []executor.Event{ev}}); err != nil {
			return err
		}
		if seq == 1 && o.firstEvent != nil {
			o.firstEvent(id, time.Now())
		}
		return nil
	}
	if err := emit(executor.LevelInfo, "claimed by "+o.worker); err != nil {
		return err
	}
	for _, ph := range baselinePhases {
		var status string
		if err := o.pool.QueryRow(ctx, `SELECT status FROM public.runs WHERE id = $1`, id).Scan(&status); err != nil {
			return fmt.Errorf("re-read status: %w", err)
		}
		if status != executor.StatusRunning {
			return nil
		}
		for _, msg := range []string{ph + " started", "noop", ph + " done"} {
			if err := emit(executor.LevelInfo, msg); err != nil {
				return err
			}
		}
	}
	if _, err := o.pool.Exec(ctx, `INSERT INTO public.artifacts (run_id, kind, title, value) VALUES ($1, 'file', 'report.md', $2)`,
		id, benchArtifact); err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	if err := emit(executor.LevelSuccess, "run succeeded"); err != nil {
		return err
	}
	if _, err := o.pool.Exec(ctx, `SELECT public.complete_run($1, 'success', NULL)`, id); err != nil {
		return fmt.Errorf("complete_run: %w", err)
	}
	if o.finished != nil {
		o.finished(id, time.Now())
	}
	return nil
}

// startOriginal runs o.loop until the returned stop is called.
func startOriginal(o *original) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.loop(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// baselinePickup samples the original design's pickup: each run is inserted
// at a random moment of the 800 ms poll cycle.
func baselinePickup(ctx context.Context, sc *scratch, n int) (claims, firsts []time.Duration, err error) {
	st, err := openPG(ctx, sc.URL, 4)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	tr := newTracker()
	o := &original{pool: sc.Pool, events: st, worker: "bench-original",
		claimed:    func(id string, at time.Time) { tr.onClaim([]*executor.Run{{ID: id}}, at, at) },
		firstEvent: func(id string, at time.Time) { tr.onEvents([]executor.Event{{RunID: id}}, at) },
		finished:   func(id string, at time.Time) { tr.onFinish(executor.Finish{Lease: executor.Lease{RunID: id}}, at) }}
	stop := startOriginal(o)
	defer func() {
		if serr := stop(); err == nil {
			err = serr
		}
	}()
	for range n {
		time.Sleep(rand.N(baselinePoll))
		id := uuid.New()
		m := tr.expect(id)
		t0 := time.Now()
		if _, err := sc.Pool.Exec(ctx, `INSERT INTO runs (id, env, kind, lane, intent) VALUES ($1, 'dev', 'healthcheck', 'A', 'bench pickup original')`, id); err != nil {
			return nil, nil, err
		}
		claimed, err := recv(ctx, m.claimed, 30*time.Second, "the original design's claim")
		if err != nil {
			return nil, nil, err
		}
		first, err := recv(ctx, m.firstEvent, 30*time.Second, "the original design's first event")
		if err != nil {
			return nil, nil, err
		}
		if _, err := recv(ctx, m.finished, 30*time.Second, "the original design's finish"); err != nil {
			return nil, nil, err
		}
		tr.forget(id)
		claims, firsts = append(claims, claimed[1].Sub(t0)), append(firsts, first.Sub(t0))
	}
	return claims, firsts, nil
}

// baselineThroughput runs the original design for a fixed window over a
// queue that never runs dry and counts the runs it finished.
func baselineThroughput(ctx context.Context, e *env, sc *scratch, res *ScenarioResult) error {
	st, err := openPG(ctx, sc.URL, 4)
	if err != nil {
		return err
	}
	defer st.Close()
	queued := int(e.o.BaselineDuration/baselinePoll) + 20
	if _, err := sc.Pool.Exec(ctx, `INSERT INTO runs (env, kind, lane, intent, created_at)
		SELECT 'dev', 'healthcheck', 'A', 'bench throughput original', now() + g * interval '1 microsecond'
		FROM generate_series(1, $1) g`, queued); err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		finished int
		deadline = time.Now().Add(e.o.BaselineDuration)
	)
	o := &original{pool: sc.Pool, events: st, worker: "bench-original",
		finished: func(string, time.Time) {
			mu.Lock()
			if time.Now().Before(deadline) {
				finished++
			}
			mu.Unlock()
		}}
	began := time.Now()
	stop := startOriginal(o)
	select {
	case <-time.After(time.Until(deadline)):
	case <-ctx.Done():
	}
	if err := stop(); err != nil {
		return err
	}
	elapsed := min(time.Since(began), e.o.BaselineDuration)
	mu.Lock()
	n := finished
	mu.Unlock()
	res.setBaseline("no-op runs/s", "runs/s", false, float64(n)/elapsed.Seconds())
	res.setBaseline("event rows/s", "rows/s", false, float64(n*17)/elapsed.Seconds())
	res.Counts["baseline_runs"] = int64(n)
	res.note("original design: %d runs finished in a %s window (one run per 800 ms poll, 17 awaited event INSERTs, a status SELECT per phase, one artifact, complete_run)", n, e.o.BaselineDuration)
	return nil
}

// baselineEvents inserts n events of one run one by one, each awaited, as
// the original design wrote every line, and returns the rate.
func baselineEvents(ctx context.Context, store executor.Store, runID string, n int) (float64, error) {
	began := time.Now()
	for i := 1; i <= n; i++ {
		ev := executor.Event{RunID: runID, Seq: i, TS: time.Now(), Level: executor.LevelInfo, Source: "Vercel",
			Message: benchLine(i), Attempt: 1}
		if _, err := store.AppendRows(ctx, benchWorker, executor.Rows{Events: []executor.Event{ev}}); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(began).Seconds(), nil
}
