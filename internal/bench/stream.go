package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/uuid"
)

// benchLine is chatty line i: about 60 bytes, like a build log line.
func benchLine(i int) string {
	return fmt.Sprintf("build line %07d: compiled web/app/chunk-%04d.js (12.3 kB)", i, i%10000)
}

// chattyRunbook logs lines as fast as it can in its action phase.
type chattyRunbook struct {
	noopRunbook
	lines int
	took  chan time.Duration
}

func (c *chattyRunbook) Action(ctx context.Context, rc *executor.RunContext) error {
	began := time.Now()
	for i := range c.lines {
		if err := rc.Log("Vercel", benchLine(i)); err != nil {
			return err
		}
	}
	c.took <- time.Since(began)
	return nil
}

// latencies collects, per stored event row, the time from its queueing in
// the writer (Event.TS) to the return of the insert that stored it.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) observe(events []executor.Event, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range events {
		l.all = append(l.all, at.Sub(ev.TS))
	}
}

func (l *latencies) sorted() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.all)
	slices.Sort(s)
	return s
}

// runStream measures one chatty run (RunContext.Log) and the raw event
// rate of the writer (Emitter.Emit, not coalesced) on both stores.
func runStream(ctx context.Context, e *env, res *ScenarioResult) error {
	sc, err := e.newScratch(ctx, "stream")
	if err != nil {
		return err
	}
	defer sc.close()
	rs, err := e.openREST(ctx, sc)
	if err != nil {
		return err
	}
	if rs != nil {
		defer rs.close()
	} else {
		res.note("REST store skipped: %s", noPostgREST)
	}
	if res.opsd {
		if err := e.chatty(ctx, sc, res); err != nil {
			return fmt.Errorf("chatty run: %w", err)
		}
		ceiling, err := insertCeiling(ctx, sc, min(e.o.Events, 100000))
		if err != nil {
			return fmt.Errorf("insert ceiling: %w", err)
		}
		res.set("PostgreSQL's own ceiling: one INSERT ... SELECT of generated rows", "rows/s", false, ceiling)
		for _, side := range []struct {
			name   string
			n      int
			target float64
		}{{"direct", e.o.Events, 200000}, {"REST", e.o.RESTEvents, 30000}} {
			db, store, closeStore, err := openSide(ctx, sc, rs, side.name)
			if err != nil {
				return err
			}
			if store == nil {
				continue
			}
			e.progress("stream: %d raw events through the writer, %s store", side.n, side.name)
			lat := &latencies{}
			rate, err := rawEmit(ctx, db, &observed{Store: store, appended: lat.observe}, side.n)
			closeStore()
			if err != nil {
				return fmt.Errorf("raw events, %s store: %w", side.name, err)
			}
			res.set("raw events written/s, "+side.name+" store", "rows/s", false, rate, side.target)
			res.set("raw event flush latency p99, "+side.name+" store", "ms", true, ms(percentile(lat.sorted(), 0.99)))
			res.Counts["raw_events_"+strings.ToLower(side.name)] = int64(side.n)
		}
		res.note("raw events: 8 runs emit concurrently through one writer (one daemon's) with Emitter.Emit (not coalesced), default writer settings (batch 500, flush 50 ms, buffer 20,000); rate = events / (first Emit to Writer.Sync returning); every row is counted back from the database. Flush latency = from the event entering the writer queue to the insert holding it returning: at saturation it is the queue's depth divided by the rate")
	}
	if res.baseline {
		e.progress("stream: original design, %d events one INSERT each, both stores", e.o.BaselineEvents)
		for _, side := range []string{"direct", "REST"} {
			db, store, closeStore, err := openSide(ctx, sc, rs, side)
			if err != nil {
				return err
			}
			if store == nil {
				continue
			}
			var rate float64
			ids, err := benchRunsInFlight(ctx, db, 1, "bench original events")
			if err == nil {
				rate, err = baselineEvents(ctx, store, ids[0], e.o.BaselineEvents)
			}
			closeStore()
			if err != nil {
				return fmt.Errorf("baseline, %s store: %w", side, err)
			}
			res.setBaseline("raw events written/s, "+side+" store", "rows/s", false, rate)
			if side == "direct" {
				res.setBaseline("chatty lines accepted/s", "lines/s", false, rate)
				res.setBaseline("chatty rows/s per run (coalesced)", "rows/s", true, rate)
			}
		}
		res.note("original design: every line or event is one awaited INSERT of one row (%d rows per store), so a chatty run writes as many rows a second as it has lines", e.o.BaselineEvents)
	}
	return nil
}

// openSide opens the store of one side and says which database it writes
// to; the REST side has no store (nil) when there is no PostgREST.
func openSide(ctx context.Context, sc *scratch, rs *restSide, side string) (*scratch, executor.Store, func(), error) {
	if side == "REST" {
		if rs == nil {
			return nil, nil, nil, nil
		}
		st, err := rs.store()
		if err != nil {
			return nil, nil, nil, err
		}
		return rs.sc, st, st.Close, nil
	}
	st, err := openPG(ctx, sc.URL, 10)
	if err != nil {
		return nil, nil, nil, err
	}
	return sc, st, st.Close, nil
}

// chatty runs one run through a daemon whose action logs e.o.Lines lines.
func (e *env) chatty(ctx context.Context, sc *scratch, res *ScenarioResult) error {
	e.progress("stream: one run logging %d lines", e.o.Lines)
	st, err := openPG(ctx, sc.URL, 10)
	if err != nil {
		return err
	}
	defer st.Close()
	tr := newTracker()
	lat := &latencies{}
	obs := &observed{Store: st, claimed: tr.onClaim, finished: tr.onFinish,
		appended: func(evs []executor.Event, at time.Time) { lat.observe(evs, at) }}
	rb := &chattyRunbook{lines: e.o.Lines, took: make(chan time.Duration, 1)}
	d, err := startDaemon(benchConfig("bench-stream", 4), obs,
		executor.ResolverFunc(func(context.Context, *executor.Run) (executor.Runbook, error) { return rb, nil }), e.o.Log)
	if err != nil {
		return err
	}
	defer d.stop() //nolint:errcheck
	id := uuid.New()
	m := tr.expect(id)
	if _, err := sc.Pool.Exec(ctx, `INSERT INTO runs (id, env, kind, intent) VALUES ($1, 'dev', 'deploy', 'bench chatty')`, id); err != nil {
		return err
	}
	took, err := recv(ctx, rb.took, 10*time.Minute, "the chatty run's lines")
	if err != nil {
		return err
	}
	if _, err := recv(ctx, m.finished, 5*time.Minute, "the chatty run's finish"); err != nil {
		return err
	}
	if err := d.stop(); err != nil {
		return err
	}

	rows, err := sc.Pool.Query(ctx, `SELECT message, ts FROM run_events WHERE run_id = $1 AND source = 'Vercel' ORDER BY seq`, id)
	if err != nil {
		return err
	}
	var (
		got, misplaced int
		stamps         []time.Time
	)
	for rows.Next() {
		var msg string
		var ts time.Time
		if err := rows.Scan(&msg, &ts); err != nil {
			rows.Close()
			return err
		}
		stamps = append(stamps, ts)
		for line := range strings.SplitSeq(msg, "\n") {
			if line != benchLine(got) {
				misplaced++
			}
			got++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	n := len(stamps)
	span := took
	if n > 1 {
		span = max(span, stamps[n-1].Sub(stamps[0]))
	}
	peak := 0
	for i, j := 0, 0; i < n; i++ { // the most rows within any one second
		for stamps[i].Sub(stamps[j]) >= time.Second {
			j++
		}
		peak = max(peak, i-j+1)
	}
	flush := lat.sorted()
	res.set("chatty lines accepted/s", "lines/s", false, float64(e.o.Lines)/took.Seconds())
	res.set("chatty rows/s per run (coalesced)", "rows/s", true, float64(n)/max(span.Seconds(), 1), 10)
	res.set("chatty rows in the busiest second", "rows", true, float64(peak))
	res.set("chatty lines lost or out of order", "lines", true, float64(max(e.o.Lines-got, 0)+misplaced), 0)
	res.set("event flush latency p50 (queued to stored)", "ms", true, ms(percentile(flush, 0.5)))
	res.set("event flush latency p99 (queued to stored)", "ms", true, ms(percentile(flush, 0.99)))
	res.Counts["lines"], res.Counts["lines_stored"], res.Counts["lines_misplaced"] = int64(e.o.Lines), int64(got), int64(misplaced)
	res.Counts["chatty_rows"] = int64(n)
	res.note("chatty: one run logs %d lines (~%d bytes each) with RunContext.Log as fast as it can: accepted in %s, stored as %d rows (%.0f lines per row) over %s; rows/s = rows / max(1 s, that span); every line is read back in order; the busiest second is the most rows within any sliding 1 s window (at 10 rows/s it can hold 11: the fence post)", e.o.Lines, len(benchLine(0)), took.Round(time.Millisecond), n, float64(got)/float64(max(n, 1)), span.Round(time.Millisecond))
	return nil
}

// insertCeiling is how fast this PostgreSQL inserts event rows with no
// client in the way: one INSERT ... SELECT FROM generate_series of n rows
// like rawEmit's, into a run of their own (constraints, indexes, the
// foreign key and the publication all apply).
func insertCeiling(ctx context.Context, sc *scratch, n int) (float64, error) {
	ids, err := benchRunsInFlight(ctx, sc, 1, "bench insert ceiling")
	if err != nil {
		return 0, err
	}
	id := ids[0]
	began := time.Now()
	// The rows go in as the fenced writes do (the lease already checked), so
	// the ceiling and the writer pay for the same triggers.
	tx, err := sc.Pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT public.opsd_fenced_write(true)`); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO run_events (run_id, seq, level, source, message, phase)
		SELECT $1, g, 'info', 'Kubernetes', format('deployment web: replica %s ready (image registry.example.com/web:sha-1f2e3d, node pool-%s)', g, g % 7), 'action'
		FROM generate_series(1, $2::int) g`, id, n); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(began).Seconds(), nil
}

// rawEmit pushes n events of 8 runs through one writer with Emitter.Emit
// and returns rows written per second, checked against the database.
func rawEmit(ctx context.Context, sc *scratch, store executor.Store, n int) (float64, error) {
	const runs = 8
	ids, err := benchRunsInFlight(ctx, sc, runs, "bench raw events")
	if err != nil {
		return 0, err
	}
	w := executor.NewWriter(store, benchWorker, executor.WriterConfig{}, nil, executor.NewMetrics())
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.Start(wctx)
	began := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for r, id := range ids {
		per := n / runs
		if r < n%runs {
			per++
		}
		g.Go(func() error {
			em := w.NewEmitter(gctx, id, 1, 1, 10, nil)
			for i := range per {
				msg := fmt.Sprintf("deployment web: replica %d ready (image registry.example.com/web:sha-1f2e3d, node pool-%d)", i, i%7)
				if err := em.Emit(executor.LevelInfo, "Kubernetes", msg, nil); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err = g.Wait()
	if err == nil {
		err = w.Sync(ctx)
	}
	elapsed := time.Since(began)
	if serr := w.Stop(ctx); err == nil {
		err = serr
	}
	if err != nil {
		return 0, err
	}
	var stored int
	if err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM run_events WHERE run_id = ANY($1::uuid[])`, ids).Scan(&stored); err != nil {
		return 0, err
	}
	if stored != n {
		return 0, fmt.Errorf("%d events emitted but %d rows stored", n, stored)
	}
	return float64(n) / elapsed.Seconds(), nil
}

// benchWorker is the worker that holds the bench's hand-made runs: rows are
// stored only for runs in flight under their writer's lease.
const benchWorker = "opsd-bench"

// benchRunsInFlight inserts n runs in a lane of their own and claims them
// for benchWorker (attempt 1, an hour's lease).
func benchRunsInFlight(ctx context.Context, sc *scratch, n int, intent string) ([]string, error) {
	const lane = "bench-rows"
	for range n {
		if _, err := sc.Pool.Exec(ctx, `INSERT INTO runs (env, kind, intent, lane) VALUES ('dev', 'deploy', $1, $2)`, intent, lane); err != nil {
			return nil, err
		}
	}
	rows, err := sc.Pool.Query(ctx, `SELECT j->>'id' FROM public.claim_run($1, $2, $3, NULL, 3600) j`, benchWorker, lane, n)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err == nil && len(ids) != n {
		err = fmt.Errorf("claimed %d of %d bench runs", len(ids), n)
	}
	return ids, err
}
