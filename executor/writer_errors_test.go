package executor_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/runbooks"
)

// refusingStore fails every AppendRows with fail while it is set, as a store
// does when the failure is not about any row: the key lost its grants, or
// PostgREST's schema cache does not list append_run_rows yet after a
// migration. It counts the calls it failed.
type refusingStore struct {
	executor.Store
	fail   atomic.Pointer[executor.StoreError]
	failed atomic.Int64
}

func (s *refusingStore) AppendRows(ctx context.Context, worker string, rows executor.Rows) ([]executor.Lease, error) {
	if err := s.fail.Load(); err != nil {
		s.failed.Add(1)
		return nil, err
	}
	return s.Store.AppendRows(ctx, worker, rows)
}

// TestWriterRetriesErrorsNotAboutRows: while the store refuses batches for a
// reason that is not about their rows (permission denied, then a function
// missing from PostgREST's schema cache), the writer drops nothing: it
// retries, says so in an error log line naming the error, and once the
// store answers again every event, step, phase change and the finish land.
func TestWriterRetriesErrorsNotAboutRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st := &refusingStore{Store: e.store}
	st.fail.Store(&executor.StoreError{Kind: executor.ErrPermission, Op: "append_run_rows", Code: "42501",
		Message: "permission denied for function append_run_rows"})
	cfg := fastConfig("")
	cfg.Writer = executor.WriterConfig{RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}
	obs, logs := observer.New(zapcore.WarnLevel)
	log := zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), obs))
	startDaemonLogged(t, st, cfg, &runbooks.Resolver{Store: st}, log)
	id := e.submit(e.template("noop-refused", noopTemplate), nil, "A", 100, "")

	refusedNoDrop := func(n int64) func() bool {
		return func() bool {
			require.Zero(t, logs.FilterMessageSnippet("rejected by the database; dropped").Len(), "no row is dropped while the store refuses batches")
			return st.failed.Load() >= n
		}
	}
	waitFor(t, 10*time.Second, "batches refused for permission", refusedNoDrop(3))
	st.fail.Store(&executor.StoreError{Kind: executor.ErrNotFound, Op: "append_run_rows", Code: "PGRST202", Status: 404,
		Message: "Could not find the function public.append_run_rows in the schema cache"})
	waitFor(t, 10*time.Second, "batches refused for a missing function", refusedNoDrop(st.failed.Load()+3))
	var status string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT status FROM runs WHERE id = $1`, id).Scan(&status))
	require.Equal(t, "running", status, "the finish waits for the store, like the rows before it")
	st.fail.Store(nil)

	status, msg := waitStatus(t, e.db.Pool, id, 10*time.Second, "success", "error")
	require.Equal(t, "success", status, msg)
	var gaps, steps, unfinished int
	var phase string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE seq <> n)
		FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM run_events WHERE run_id = $1) x`, id).Scan(&gaps))
	require.Zero(t, gaps, "every event of the run is stored, in order")
	require.Equal(t, 1, testutilCount(t, e, `SELECT count(*) FROM run_events WHERE run_id = $1 AND message LIKE 'claimed by %'`, id),
		"the run's first event is stored")
	require.Equal(t, 1, testutilCount(t, e, `SELECT count(*) FROM run_events WHERE run_id = $1 AND message LIKE 'run succeeded%'`, id),
		"the final event is stored")
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status <> 'succeeded'),
		(SELECT phase FROM runs WHERE id = $1) FROM run_steps WHERE run_id = $1`, id).Scan(&steps, &unfinished, &phase))
	require.Positive(t, steps, "the run's steps are stored")
	require.Zero(t, unfinished, "each step's last state is stored")
	require.Equal(t, executor.PhaseSummarize, phase, "the batched phase changes are stored")

	var named [2]bool
	for _, l := range logs.All() {
		if l.Level == zapcore.ErrorLevel {
			msg := l.ContextMap()["error"]
			named[0] = named[0] || strings.Contains(toString(msg), "permission denied")
			named[1] = named[1] || strings.Contains(toString(msg), "PGRST202")
		}
	}
	require.Equal(t, [2]bool{true, true}, named, "an error log line names each error")
	require.Zero(t, logs.FilterMessageSnippet("rejected by the database; dropped").Len(), "no row was dropped")
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

// TestWriterStopGivesUpOnRefusedRows: a graceful stop while the store keeps
// refusing rows for a reason not about them (a revoked grant) drains for a
// bounded time, then abandons them and says so, so the daemon exits within
// its supervisor's stop timeout instead of being killed; the caller's
// context is not what ends it.
func TestWriterStopGivesUpOnRefusedRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st := &refusingStore{Store: e.store}
	st.fail.Store(&executor.StoreError{Kind: executor.ErrPermission, Op: "append_run_rows", Code: "42501",
		Message: "permission denied for function append_run_rows"})
	obs, logs := observer.New(zapcore.ErrorLevel)
	w := executor.NewWriter(st, "w1", executor.WriterConfig{RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}, zap.New(obs), nil)
	w.Start(context.Background())
	em := w.NewEmitter(context.Background(), "00000000-0000-4000-8000-00000000f00d", 1, 1, 0, nil)
	require.NoError(t, em.Emit(executor.LevelInfo, "System", "never stored", nil))
	waitFor(t, 10*time.Second, "a refused batch", func() bool { return st.failed.Load() >= 1 })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, w.Stop(ctx), "the drain ended on its own, not by the caller's deadline")
	require.Equal(t, 1, logs.FilterMessageSnippet("shutting down: the store still refuses the rows").Len())
}
