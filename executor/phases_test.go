package executor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/runbooks"
)

// TestBatchedPhasesReachTheDatabase: the phases recorded with the writer's
// batches (preflight, verify, summarize) are stored within a flush while the
// run is in them, and a finished run's phase is its last one.
func TestBatchedPhasesReachTheDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDaemon(fastConfig(""), nil)
	ctx := context.Background()
	phaseOf := func(id string) string {
		var p *string
		require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT phase FROM runs WHERE id = $1`, id).Scan(&p))
		if p == nil {
			return ""
		}
		return *p
	}

	napping := e.submit(e.template("nap-pre", sleepTemplate("preflight", "60s")), nil, "A", 100, "")
	waitFor(t, 10*time.Second, "the stored phase to be preflight while the run sleeps in it", func() bool {
		return phaseOf(napping) == "preflight"
	})
	ok, err := e.store.CancelRun(ctx, napping)
	require.NoError(t, err)
	require.True(t, ok)

	done := e.submit(e.template("noop", noopTemplate), nil, "B", 100, "")
	status, msg := waitStatus(t, e.db.Pool, done, 10*time.Second, "success", "error")
	require.Equal(t, "success", status, msg)
	require.Equal(t, "summarize", phaseOf(done), "the last phase a finished run entered")
}

// finishRejectingStore rejects, as the database rejects a bad row, every
// batch that carries finishes, and counts the finishes made on their own.
type finishRejectingStore struct {
	executor.Store
	rejected, alone atomic.Int64
}

func (s *finishRejectingStore) AppendRows(ctx context.Context, worker string, rows executor.Rows) ([]executor.Lease, error) {
	if len(rows.Finishes) > 0 {
		s.rejected.Add(1)
		return nil, &executor.StoreError{Kind: executor.ErrInvalidInput, Op: "append_run_rows", Message: "rejected by the test"}
	}
	return s.Store.AppendRows(ctx, worker, rows)
}

func (s *finishRejectingStore) FinishRun(ctx context.Context, f executor.Finish) (bool, error) {
	s.alone.Add(1)
	return s.Store.FinishRun(ctx, f)
}

// TestFinishFallsBackWhenTheBatchIsRejected: when the database rejects the
// batch a finish went with, the rows are written without it and the finish
// is made on its own, final event included, so the run still ends.
func TestFinishFallsBackWhenTheBatchIsRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st := &finishRejectingStore{Store: e.store}
	startDaemonOn(t, st, fastConfig(""), &runbooks.Resolver{Store: st})
	id := e.submit(e.template("noop-fallback", noopTemplate), nil, "A", 100, "")
	status, msg := waitStatus(t, e.db.Pool, id, 10*time.Second, "success", "error")
	require.Equal(t, "success", status, msg)
	require.Positive(t, st.rejected.Load(), "the batch with the finish was rejected")
	require.Equal(t, int64(1), st.alone.Load(), "the finish was made on its own")
	var level, last string
	require.NoError(t, e.db.Pool.QueryRow(context.Background(),
		`SELECT level, message FROM run_events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1`, id).Scan(&level, &last))
	require.Equal(t, "success", level)
	require.Contains(t, last, "run succeeded")
	var gaps int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FILTER (WHERE seq <> n) FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM run_events WHERE run_id = $1) x`, id).Scan(&gaps))
	require.Zero(t, gaps, "every event of the run is stored, in order")
}
