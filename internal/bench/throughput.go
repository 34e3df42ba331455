package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/runbooks"
)

// noopTemplate is the throughput run: three no-op steps over preflight,
// action and verify; with the artifact of withArtifact each run writes about
// 17 event rows, 8 run_steps rows (written twice: running, then done), one
// artifact, 5 phase updates and its claim and finish.
const noopTemplate = `version: 1
steps:
  - {id: check, title: Check, kind: system, action: noop, phase: preflight}
  - {id: work, title: Work, kind: system, action: noop}
  - {id: confirm, title: Confirm, kind: system, action: noop, phase: verify}
`

// benchArtifact is the report each throughput run stores.
const benchArtifact = "# bench report\n\nno-op run: check, work, confirm all succeeded.\n"

// withArtifact adds one file artifact to a runbook's summarize phase, as a
// real run's report would.
type withArtifact struct{ executor.Runbook }

func (w withArtifact) Summarize(ctx context.Context, rc *executor.RunContext) error {
	if err := w.Runbook.Summarize(ctx, rc); err != nil {
		return err
	}
	return rc.Artifact(ctx, executor.ArtifactFile, "report.md", benchArtifact)
}

func artifactResolver(store executor.Store) executor.Resolver {
	r := &runbooks.Resolver{Store: store}
	return executor.ResolverFunc(func(ctx context.Context, run *executor.Run) (executor.Runbook, error) {
		rb, err := r.Resolve(ctx, run)
		if err != nil {
			return nil, err
		}
		return withArtifact{rb}, nil
	})
}

// runThroughput queues N no-op template runs over S sessions x 4 lanes,
// starts K daemons in this process, and measures from their start until the
// last run's finish was committed.
func runThroughput(ctx context.Context, e *env, res *ScenarioResult) error {
	sc, err := e.newScratch(ctx, "throughput")
	if err != nil {
		return err
	}
	defer sc.close()
	if res.opsd {
		if err := e.throughputOpsd(ctx, sc, res); err != nil {
			return err
		}
	}
	if res.baseline {
		e.progress("throughput: original design for %s", e.o.BaselineDuration)
		if err := baselineThroughput(ctx, e, sc, res); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
	}
	return nil
}

func (e *env) throughputOpsd(ctx context.Context, sc *scratch, res *ScenarioResult) error {
	o := e.o
	tplID, err := sc.template(ctx, "bench-noop", noopTemplate)
	if err != nil {
		return err
	}
	var sessions []string
	if !o.NoSessions {
		for range o.Sessions {
			var id string
			if err := sc.Pool.QueryRow(ctx, `INSERT INTO sessions (title) VALUES ('bench') RETURNING id`).Scan(&id); err != nil {
				return err
			}
			sessions = append(sessions, id)
		}
	}
	// Run g goes to session g % S and lane (g / S) % 4, so every (session,
	// lane) queue gets an equal share, in created_at order.
	if _, err := sc.Pool.Exec(ctx, `
		INSERT INTO runs (env, kind, template_id, session_id, lane, intent, created_at)
		SELECT 'dev', 'healthcheck', $1::uuid,
		       CASE WHEN cardinality($2::uuid[]) = 0 THEN NULL ELSE ($2::uuid[])[1 + g % cardinality($2::uuid[])] END,
		       chr(65 + (g / greatest(cardinality($2::uuid[]), 1)) % 4), 'bench throughput',
		       now() + g * interval '1 microsecond'
		FROM generate_series(0, $3::int - 1) g`, tplID, sessions, o.Runs); err != nil {
		return fmt.Errorf("queue runs: %w", err)
	}
	e.progress("throughput: %d runs queued over %d sessions x 4 lanes; %d daemon(s), lane concurrency %d",
		o.Runs, len(sessions), o.Daemons, o.LaneConcurrency)

	var (
		count    atomic.Int64
		lastMu   sync.Mutex
		last     time.Time
		allDone  = make(chan struct{})
		doneOnce sync.Once
	)
	onFinish := func(_ executor.Finish, at time.Time) {
		lastMu.Lock()
		last = at
		lastMu.Unlock()
		if count.Add(1) == int64(o.Runs) {
			doneOnce.Do(func() { close(allDone) })
		}
	}
	began := time.Now()
	var (
		daemons []*daemon
		stores  []executor.Store
	)
	defer func() {
		for _, d := range daemons {
			_ = d.stop()
		}
		for _, st := range stores {
			st.Close()
		}
	}()
	for k := range o.Daemons {
		st, err := openPG(ctx, sc.URL, 10)
		if err != nil {
			return err
		}
		stores = append(stores, st)
		obs := &observed{Store: st, finished: onFinish}
		cfg := benchConfig(fmt.Sprintf("bench-tp-%d", k), o.LaneConcurrency)
		d, err := startDaemon(cfg, obs, artifactResolver(obs), o.Log)
		if err != nil {
			return err
		}
		daemons = append(daemons, d)
	}
	timeout := time.Minute + time.Duration(o.Runs)*20*time.Millisecond
	select {
	case <-allDone:
	case <-time.After(timeout):
		return fmt.Errorf("only %d of %d runs finished within %s", count.Load(), o.Runs, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	lastMu.Lock()
	elapsed := last.Sub(began)
	lastMu.Unlock()
	var errs []error
	for _, d := range daemons {
		errs = append(errs, d.stop())
	}
	daemons = nil
	if err := errors.Join(errs...); err != nil {
		return err
	}

	var ok, events, artifacts, steps int64
	var p50, p99 float64
	if err := sc.Pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE status = 'success'),
		       (SELECT count(*) FROM run_events ev JOIN runs r ON r.id = ev.run_id WHERE r.intent = 'bench throughput'),
		       (SELECT count(*) FROM artifacts a JOIN runs r ON r.id = a.run_id WHERE r.intent = 'bench throughput'),
		       (SELECT count(*) FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE r.intent = 'bench throughput'),
		       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - claimed_at)), 0) * 1000,
		       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - claimed_at)), 0) * 1000
		FROM runs WHERE intent = 'bench throughput'`).Scan(&ok, &events, &artifacts, &steps, &p50, &p99); err != nil {
		return err
	}
	if ok != int64(o.Runs) {
		var msg *string
		_ = sc.Pool.QueryRow(ctx, `SELECT error_message FROM runs WHERE intent = 'bench throughput' AND status <> 'success' LIMIT 1`).Scan(&msg)
		res.note("only %d of %d runs succeeded; first error: %v", ok, o.Runs, deref(msg))
	}
	secs := elapsed.Seconds()
	res.set("no-op runs/s", "runs/s", false, float64(o.Runs)/secs, 5000)
	res.set("event rows/s", "rows/s", false, float64(events)/secs)
	res.set("run duration p50 (claim to finish)", "ms", true, p50)
	res.set("run duration p99 (claim to finish)", "ms", true, p99)
	res.Counts["runs"], res.Counts["runs_succeeded"] = int64(o.Runs), ok
	res.Counts["event_rows"], res.Counts["artifacts"], res.Counts["step_rows"] = events, artifacts, steps
	res.note("%d runs in %.2fs (daemon start to the last finish committed) over %d sessions x 4 lanes (%s), %d daemon(s) in this process, each a direct store (pool of 10) and lane concurrency %d; per run: %.1f event rows, %.1f artifacts, %.1f run_steps rows",
		o.Runs, secs, len(sessions), map[bool]string{true: "runs without a session", false: "one run per (session, lane) at a time"}[o.NoSessions],
		o.Daemons, o.LaneConcurrency, float64(events)/float64(o.Runs), float64(artifacts)/float64(o.Runs), float64(steps)/float64(o.Runs))
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "(none)"
	}
	return *s
}
