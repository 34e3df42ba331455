// Command riverpeer measures River (github.com/riverqueue/river) on a
// PostgreSQL database, as the peer of `opsd bench`: (a) no-op jobs/s, (b)
// jobs/s of jobs that each make the writes of a no-op opsd template run in
// one transaction (a run row, 17 events in one multi-row insert, 8 step rows,
// one artifact, 4 phase updates, the finish, and the job's completion), and
// (c) the latency from a job's insert to the start of its work on an idle
// client, p50/p99. It prints the figures as JSON.
//
// It is a module of its own, so the opsd module neither imports nor builds
// it. Run it against a scratch database (it creates the river_* tables and
// the peer_* tables of the write job, and drops the peer_* tables at the end):
//
//	cd bench/river && go run . --database-url postgres://postgres@127.0.0.1:5432/riverpeer
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

type result struct {
	NoopJobsPerSec   float64 `json:"noop_jobs_per_s"`
	WriteJobsPerSec  float64 `json:"write_jobs_per_s"`
	PickupP50Ms      float64 `json:"pickup_p50_ms"`
	PickupP99Ms      float64 `json:"pickup_p99_ms"`
	Jobs             int     `json:"jobs"`
	WriteJobs        int     `json:"write_jobs"`
	Samples          int     `json:"pickup_samples"`
	MaxWorkers       int     `json:"max_workers"`
	RiverVersion     string  `json:"river_version"`
	PostgreSQL       string  `json:"postgresql"`
	EventRowsPerJob  int     `json:"event_rows_per_write_job"`
	StepRowsPerJob   int     `json:"step_rows_per_write_job"`
	PhaseUpdatesPerJ int     `json:"phase_updates_per_write_job"`
}

func main() {
	url := flag.String("database-url", "", "PostgreSQL URL of a scratch database (required)")
	jobs := flag.Int("jobs", 20000, "no-op jobs")
	writeJobs := flag.Int("write-jobs", 5000, "jobs making the writes of a no-op opsd run")
	samples := flag.Int("samples", 500, "insert-to-work-start samples")
	workers := flag.Int("max-workers", 64, "jobs in flight (opsd's throughput scenario has 16 sessions x 4 lanes = 64)")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "riverpeer: --database-url is required")
		os.Exit(2)
	}
	res, err := run(context.Background(), *url, *jobs, *writeJobs, *samples, *workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "riverpeer:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
}

// NoopArgs is a job that does nothing.
type NoopArgs struct{}

func (NoopArgs) Kind() string { return "noop" }

// RunArgs is a job that makes the writes of a no-op opsd template run.
type RunArgs struct{ N int }

func (RunArgs) Kind() string { return "opsd_run" }

// PingArgs is a pickup sample: its worker reports when its work started.
type PingArgs struct{ N int }

func (PingArgs) Kind() string { return "ping" }

type noopWorker struct {
	river.WorkerDefaults[NoopArgs]
	done func()
}

func (w *noopWorker) Work(context.Context, *river.Job[NoopArgs]) error { w.done(); return nil }

type pingWorker struct {
	river.WorkerDefaults[PingArgs]
	started chan time.Time
}

func (w *pingWorker) Work(context.Context, *river.Job[PingArgs]) error {
	w.started <- time.Now()
	return nil
}

type runWorker struct {
	river.WorkerDefaults[RunArgs]
	pool *pgxpool.Pool
	done func()
}

// Work makes, in one transaction, what a no-op opsd run stores: its run row,
// 17 events (one multi-row insert), 8 step rows, one artifact, 4 phase
// updates and the finish, and completes the job in the same transaction.
func (w *runWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var id string
	if err := tx.QueryRow(ctx, `INSERT INTO peer_runs (status, phase, started_at) VALUES ('running', 'validate', now()) RETURNING id`).Scan(&id); err != nil {
		return fmt.Errorf("run row: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO peer_events (run_id, seq, level, source, message, data, phase)
		SELECT $1, g, 'info', 'System', format('event %s of the run', g), jsonb_build_object('n', g), 'action'
		FROM generate_series(1, 17) g`, id); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO peer_steps (run_id, idx, step_id, title, kind, status, started_at, finished_at)
		SELECT $1, g, 'step-' || g, 'Step ' || g, 'system', 'succeeded', now(), now() FROM generate_series(0, 7) g`, id); err != nil {
		return fmt.Errorf("steps: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO peer_artifacts (run_id, kind, title, value) VALUES ($1, 'file', 'report.md', $2)`,
		id, "# bench report\n\nno-op run: check, work, confirm all succeeded.\n"); err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	for _, p := range []string{"preflight", "action", "verify", "summarize"} {
		if _, err := tx.Exec(ctx, `UPDATE peer_runs SET phase = $2, heartbeat_at = now() WHERE id = $1`, id, p); err != nil {
			return fmt.Errorf("phase: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE peer_runs SET status = 'success', finished_at = now() WHERE id = $1`, id); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	w.done()
	return nil
}

// peerSchema mirrors the shape of opsd's runs, run_events, run_steps and
// artifacts (keys, foreign keys, the (run_id, seq) unique index), without
// opsd's triggers and fences.
const peerSchema = `
CREATE TABLE IF NOT EXISTS peer_runs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), created_at timestamptz NOT NULL DEFAULT now(),
  status text NOT NULL, phase text, started_at timestamptz, heartbeat_at timestamptz, finished_at timestamptz,
  error_message text, output jsonb) WITH (fillfactor = 80);
CREATE TABLE IF NOT EXISTS peer_events (
  id bigserial PRIMARY KEY, run_id uuid NOT NULL REFERENCES peer_runs (id) ON DELETE CASCADE,
  ts timestamptz NOT NULL DEFAULT now(), level text NOT NULL, source text NOT NULL, message text NOT NULL,
  data jsonb, seq int, phase text);
CREATE UNIQUE INDEX IF NOT EXISTS peer_events_run_seq ON peer_events (run_id, seq);
CREATE TABLE IF NOT EXISTS peer_steps (
  run_id uuid NOT NULL REFERENCES peer_runs (id) ON DELETE CASCADE, idx int NOT NULL, step_id text, title text,
  kind text, status text, started_at timestamptz, finished_at timestamptz, error text, PRIMARY KEY (run_id, idx));
CREATE TABLE IF NOT EXISTS peer_artifacts (
  id bigserial PRIMARY KEY, run_id uuid NOT NULL REFERENCES peer_runs (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(), kind text NOT NULL, title text NOT NULL, value text NOT NULL);
`

func run(ctx context.Context, url string, jobs, writeJobs, samples, workers int) (*result, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return nil, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	if _, err := pool.Exec(ctx, peerSchema); err != nil {
		return nil, fmt.Errorf("peer schema: %w", err)
	}
	defer func() {
		_, _ = pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS peer_artifacts, peer_steps, peer_events, peer_runs`)
	}()
	res := &result{Jobs: jobs, WriteJobs: writeJobs, Samples: samples, MaxWorkers: workers, RiverVersion: "v0.51.2",
		EventRowsPerJob: 17, StepRowsPerJob: 8, PhaseUpdatesPerJ: 4}
	if err := pool.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&res.PostgreSQL); err != nil {
		return nil, err
	}

	var finished atomic.Int64
	var target atomic.Int64
	allDone := make(chan struct{}, 1)
	done := func() {
		if finished.Add(1) == target.Load() {
			allDone <- struct{}{}
		}
	}
	started := make(chan time.Time, 1)
	ws := river.NewWorkers()
	river.AddWorker(ws, &noopWorker{done: done})
	river.AddWorker(ws, &runWorker{pool: pool, done: done})
	river.AddWorker(ws, &pingWorker{started: started})
	client, err := river.NewClient(driver, &river.Config{
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
		Workers:       ws,
		FetchCooldown: river.FetchCooldownMin, // as quick to pick up as River allows
	})
	if err != nil {
		return nil, err
	}
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	}()

	// Pickup first, on an idle client: insert one job, wait for its work.
	lat := make([]float64, 0, samples)
	for i := range samples {
		t0 := time.Now()
		if _, err := client.Insert(ctx, PingArgs{N: i}, nil); err != nil {
			return nil, err
		}
		select {
		case t1 := <-started:
			lat = append(lat, float64(t1.Sub(t0).Microseconds())/1000)
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("ping job %d not started within 10s", i)
		}
		time.Sleep(5 * time.Millisecond) // let the client go idle between samples
	}
	slices.Sort(lat)
	res.PickupP50Ms, res.PickupP99Ms = pct(lat, 0.50), pct(lat, 0.99)

	measure := func(n int, args func(i int) river.JobArgs) (float64, error) {
		finished.Store(0)
		target.Store(int64(n))
		params := make([]river.InsertManyParams, n)
		for i := range params {
			params[i] = river.InsertManyParams{Args: args(i)}
		}
		// The client is running, so it works while the jobs are inserted:
		// the clock runs from the first insert (which it includes) to the
		// last job's commit.
		began := time.Now()
		for i := 0; i < n; i += 5000 {
			if _, err := client.InsertMany(ctx, params[i:min(i+5000, n)]); err != nil {
				return 0, err
			}
		}
		select {
		case <-allDone:
		case <-time.After(5 * time.Minute):
			return 0, fmt.Errorf("only %d of %d jobs done in 5m", finished.Load(), n)
		}
		return float64(n) / time.Since(began).Seconds(), nil
	}
	if res.NoopJobsPerSec, err = measure(jobs, func(int) river.JobArgs { return NoopArgs{} }); err != nil {
		return nil, err
	}
	if res.WriteJobsPerSec, err = measure(writeJobs, func(i int) river.JobArgs { return RunArgs{N: i} }); err != nil {
		return nil, err
	}
	return res, nil
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(p*float64(len(sorted))), len(sorted)-1)]
}
