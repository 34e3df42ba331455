package executor_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/runbooks"
)

// startStoppable starts a daemon whose Stop the test calls itself.
func (e *env) startStoppable(cfg executor.Config) (stop func()) {
	e.t.Helper()
	d, err := executor.New(cfg, e.store, &runbooks.Resolver{Store: e.store}, zaptest.NewLogger(e.t), nil)
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx)
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		require.NoError(e.t, d.Stop(sctx))
		cancel()
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) scheduledFor(name string) []time.Time {
	e.t.Helper()
	rows, err := e.db.Pool.Query(context.Background(), `SELECT r.scheduled_for FROM runs r JOIN run_schedules s ON s.id = r.schedule_id
		WHERE s.name = $1 ORDER BY r.scheduled_for`, name)
	require.NoError(e.t, err)
	var out []time.Time
	for rows.Next() {
		var t time.Time
		require.NoError(e.t, rows.Scan(&t))
		out = append(out, t)
	}
	require.NoError(e.t, rows.Err())
	return out
}

// TestSchedulesTwoDaemons: two daemons enqueue an @every 2s schedule; over
// 20 s each tick is enqueued exactly once (no duplicate, no gap); a paused
// schedule enqueues nothing; after every daemon was down, the missed ticks
// are enqueued once, with a System event counting the skipped ones.
func TestSchedulesTwoDaemons(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ops := e.store.(executor.Operations)
	cfg := func() executor.Config {
		c := fastConfig("")
		c.Lanes = []string{"A"} // the schedule queues on lane S: its runs stay queued
		c.Maintenance.SchedulerInterval = 100 * time.Millisecond
		return c
	}
	stop1 := e.startStoppable(cfg())
	stop2 := e.startStoppable(cfg())

	enabled := true
	_, err := ops.SaveSchedule(ctx, executor.Schedule{Name: "tick", Cron: "@every 2s", Env: "dev", Kind: "healthcheck",
		Lane: "S", Overlap: "queue", Enabled: &enabled}, "tester")
	require.NoError(t, err)

	require.Eventually(t, func() bool { return len(e.scheduledFor("tick")) >= 10 }, 45*time.Second, 100*time.Millisecond)
	ticks := e.scheduledFor("tick")
	for i := 1; i < len(ticks); i++ {
		require.Equal(t, 2*time.Second, ticks[i].Sub(ticks[i-1]), "tick %d: every tick once, none missed: %v", i, ticks)
	}
	var skippedEvents int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM run_events WHERE data ? 'skipped_ticks'`).Scan(&skippedEvents))
	require.Zero(t, skippedEvents, "no tick was missed while the daemons ran")

	// Paused: nothing more; resumed: ticks again.
	_, err = ops.SetScheduleEnabled(ctx, "tick", false, "tester")
	require.NoError(t, err)
	paused := len(e.scheduledFor("tick"))
	require.Never(t, func() bool { return len(e.scheduledFor("tick")) > paused }, 3*time.Second, 100*time.Millisecond)
	_, err = ops.SetScheduleEnabled(ctx, "tick", true, "tester")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(e.scheduledFor("tick")) > paused }, 10*time.Second, 100*time.Millisecond)

	// Every daemon goes down for a while: as if all of this had happened ten
	// seconds earlier.
	stop1()
	stop2()
	_, err = e.db.Pool.Exec(ctx, `UPDATE run_schedules SET next_run_at = next_run_at - interval '10 seconds' WHERE name = 'tick'`)
	require.NoError(t, err)
	_, err = e.db.Pool.Exec(ctx, `UPDATE runs SET scheduled_for = scheduled_for - interval '10 seconds', created_at = created_at - interval '10 seconds'
		WHERE schedule_id IS NOT NULL`)
	require.NoError(t, err)
	restart := time.Now()
	before := len(e.scheduledFor("tick"))
	e.startStoppable(cfg())
	require.Eventually(t, func() bool { return len(e.scheduledFor("tick")) > before }, 10*time.Second, 50*time.Millisecond)
	var catchUps, skipped int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(max((e.data->>'skipped_ticks')::int), 0)
		FROM run_events e JOIN runs r ON r.id = e.run_id WHERE r.scheduled_for > $1::timestamptz - interval '20 seconds' AND e.data ? 'skipped_ticks'`,
		restart).Scan(&catchUps, &skipped))
	require.Equal(t, 1, catchUps, "one catch-up run")
	require.GreaterOrEqual(t, skipped, 4, "it says how many ticks were skipped")
	var behind int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM runs WHERE scheduled_for <= $1 AND created_at >= $1`, restart).Scan(&behind))
	require.Equal(t, 1, behind, "the missed ticks are enqueued once, not once per tick")
}

// TestPrunePass: the daemon's pruner and `opsd prune` go batch by batch
// until nothing is left, and a dry run deletes nothing.
func TestPrunePass(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ops := e.store.(executor.Operations)
	var id string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, lane) VALUES ('dev', 'spec', 'Q') RETURNING id`).Scan(&id))
	_, err := e.db.Pool.Exec(ctx, `UPDATE runs SET status = 'running', claimed_by = 'w', attempt = 1 WHERE id = $1`, id)
	require.NoError(t, err)
	_, err = e.db.Pool.Exec(ctx, `UPDATE runs SET status = 'success', finished_at = now() - interval '3 days' WHERE id = $1`, id)
	require.NoError(t, err)
	// Seeded as the database's own functions write rows (past the row fence).
	tx, err := e.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT opsd_fenced_write(true)`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO run_events (run_id, seq, level, source, message, ts)
		SELECT $1, g, 'info', 'System', 'e', now() - interval '3 days' FROM generate_series(1, 25) g`, id)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	req := executor.PruneRequest{Worker: "t", Retention: executor.Retention{RunEvents: 24 * time.Hour}, Batch: 10}
	dry := req
	dry.DryRun = true
	res, err := executor.PrunePass(ctx, ops, dry, time.Millisecond, nil)
	require.NoError(t, err)
	require.EqualValues(t, 25, res.RunEvents)
	batches := 0
	res, err = executor.PrunePass(ctx, ops, req, time.Millisecond, func(r executor.PruneResult) {
		batches++
		require.LessOrEqual(t, r.RunEvents, int64(10))
	})
	require.NoError(t, err)
	require.EqualValues(t, 25, res.RunEvents)
	require.Equal(t, 4, batches, "10 + 10 + 5 + an empty batch")
	var left int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM run_events WHERE run_id = $1`, id).Scan(&left))
	require.Zero(t, left)
}

// TestPruneLoopAuditLog: a daemon with only an audit_log age prunes the
// audit trail in batches, keeps younger entries, and counts what went in
// opsd_pruned_rows_total{table="audit_log"}.
func TestPruneLoopAuditLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.db.Pool.Exec(ctx, `INSERT INTO audit_log (at, action, actor)
		SELECT now() - interval '2 days' - make_interval(mins => g), 'old', 'test' FROM generate_series(1, 5) g
		UNION ALL SELECT now() - interval '23 hours', 'young', 'test'`)
	require.NoError(t, err)
	cfg := fastConfig("")
	cfg.Maintenance.Retention = executor.Retention{AuditLog: 24 * time.Hour}
	cfg.Maintenance.PruneInterval = 100 * time.Millisecond
	cfg.Maintenance.PruneBatch = 2
	cfg.Maintenance.PrunePause = time.Millisecond
	d := e.startDaemon(cfg, nil)

	pruned := func() float64 {
		families, err := d.Metrics().Registry.Gather()
		require.NoError(t, err)
		for _, f := range families {
			if f.GetName() != "opsd_pruned_rows_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "table" && l.GetValue() == "audit_log" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	require.Eventually(t, func() bool { return pruned() == 5 }, 20*time.Second, 50*time.Millisecond)
	var old, young int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE action = 'old'), count(*) FILTER (WHERE action = 'young')
		FROM audit_log`).Scan(&old, &young))
	require.Zero(t, old)
	require.Equal(t, 1, young)
}
