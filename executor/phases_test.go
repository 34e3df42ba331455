package executor_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
