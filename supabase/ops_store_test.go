package supabase_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
	"github.com/opscontrolroom/opsd/supabase/reststore"
)

// TestOperationsBothStores drives every executor.Operations method through
// pgstore.Store and through reststore.Store (PostgREST RPC), on the same SQL.
func TestOperationsBothStores(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"pg", "rest"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := pgtest.NewDB(t)
			var ops executor.Operations
			if kind == "pg" {
				s, err := pgstore.New(ctx, pgstore.Config{URL: db.URL})
				require.NoError(t, err)
				t.Cleanup(s.Close)
				ops = s
			} else {
				srv := postgresttest.New(t, db.URL, restJWTSecret)
				s, err := reststore.New(reststore.Config{URL: srv.URL, ServiceRoleKey: srv.ServiceKey(), HTTPClient: srv.Client()})
				require.NoError(t, err)
				t.Cleanup(s.Close)
				ops = s
			}
			start := time.Now().Add(-time.Second)

			on := true
			sc, err := ops.SaveSchedule(ctx, executor.Schedule{Name: "nightly", Cron: "0 3 * * *", Env: "dev", Kind: "healthcheck",
				Input: []byte(`{"target":"web"}`), Lane: "B", Enabled: &on}, "ops@host")
			require.NoError(t, err)
			require.NotNil(t, sc.NextRunAt)
			require.Equal(t, 3, sc.NextRunAt.UTC().Hour())
			require.Equal(t, "skip", sc.Overlap)

			_, err = ops.SaveSchedule(ctx, executor.Schedule{Name: "bad", Cron: "0 3 * * mun", Env: "dev", Kind: "healthcheck"}, "")
			require.ErrorIs(t, err, executor.ErrInvalidInput)
			require.ErrorContains(t, err, "day-of-week field 'mun' at position 9")

			_, err = ops.SetScheduleEnabled(ctx, "nightly", false, "ops@host")
			require.NoError(t, err)
			_, err = ops.SetScheduleEnabled(ctx, "nope", false, "ops@host")
			require.ErrorIs(t, err, executor.ErrNotFound)
			list, err := ops.ListSchedules(ctx)
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.False(t, *list[0].Enabled)
			require.Nil(t, list[0].NextRunAt)

			res, err := ops.EnqueueDueSchedules(ctx, 10)
			require.NoError(t, err)
			require.Equal(t, executor.EnqueueResult{}, res)

			// retry_run: a failed run, then one still queued.
			failed := insertRun(t, db.Pool, nil, "A", 100)
			finishRun(t, db.Pool, failed, "error", 0)
			newID, err := ops.RetryRun(ctx, failed, "ops@host")
			require.NoError(t, err)
			require.NotEqual(t, failed, newID)
			_, err = ops.RetryRun(ctx, newID, "ops@host")
			require.ErrorIs(t, err, executor.ErrInvalidInput)
			require.ErrorContains(t, err, "only runs that ended error or canceled")
			_, err = ops.RetryRun(ctx, "00000000-0000-4000-8000-000000000000", "ops@host")
			require.True(t, errors.Is(err, executor.ErrNotFound), "%v", err)

			stats, err := ops.QueueStats(ctx)
			require.NoError(t, err)
			require.EqualValues(t, 1, stats.Queued)

			pr, err := ops.Prune(ctx, executor.PruneRequest{Worker: "w", Retention: executor.Retention{Runs: time.Hour}, DryRun: true})
			require.NoError(t, err)
			require.True(t, pr.DryRun)
			require.Zero(t, pr.Total(), "the failed run finished just now")

			// Audit entries past retention.audit_log: p_audit_log reaches the SQL.
			_, err = db.Pool.Exec(ctx, `INSERT INTO audit_log (at, action, actor) VALUES
				(now() - interval '40 days', 'old', 'test'), (now() - interval '41 days', 'old', 'test')`)
			require.NoError(t, err)
			month := executor.Retention{AuditLog: 30 * 24 * time.Hour}
			pr, err = ops.Prune(ctx, executor.PruneRequest{Worker: "w", Retention: month, DryRun: true})
			require.NoError(t, err)
			require.Equal(t, executor.PruneResult{AuditLog: 2, DryRun: true}, pr)
			pr, err = ops.Prune(ctx, executor.PruneRequest{Worker: "w", Retention: month, Batch: 1})
			require.NoError(t, err)
			require.Equal(t, executor.PruneResult{AuditLog: 1}, pr)
			pr, err = executor.PrunePass(ctx, ops, executor.PruneRequest{Worker: "w", Retention: month}, time.Millisecond, nil)
			require.NoError(t, err)
			require.Equal(t, executor.PruneResult{AuditLog: 1}, pr)

			require.NoError(t, ops.DeleteSchedule(ctx, "nightly", "ops@host"))
			require.ErrorIs(t, ops.DeleteSchedule(ctx, "nightly", "ops@host"), executor.ErrNotFound)

			entries, err := ops.Audit(ctx, executor.AuditQuery{Since: start})
			require.NoError(t, err)
			var actions []string
			for _, e := range entries {
				actions = append(actions, e.Action+" "+e.Actor)
			}
			require.Contains(t, actions, "schedule.created operator:ops@host")
			require.Contains(t, actions, "schedule.paused operator:ops@host")
			require.Contains(t, actions, "retried operator:ops@host")
			require.Contains(t, actions, "schedule.deleted operator:ops@host")
			byRun, err := ops.Audit(ctx, executor.AuditQuery{RunID: newID})
			require.NoError(t, err)
			require.Len(t, byRun, 1)
			require.Equal(t, "retried", byRun[0].Action)
		})
	}
}
