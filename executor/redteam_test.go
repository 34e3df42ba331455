package executor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// lostClaimStore commits the first claim that takes a run and then reports
// a transient failure, as a response lost after commit does.
type lostClaimStore struct {
	executor.Store
	lost atomic.Bool
}

func (s *lostClaimStore) ClaimRuns(ctx context.Context, req executor.ClaimRequest) ([]*executor.Run, error) {
	runs, err := s.Store.ClaimRuns(ctx, req)
	if err == nil && len(runs) > 0 && s.lost.CompareAndSwap(false, true) {
		return nil, &executor.StoreError{Kind: executor.ErrTransient, Op: "claim_run", Message: "response lost after commit"}
	}
	return runs, err
}

// TestRedTeamLostClaimIsReplayed: a claim whose response was lost is
// replayed with the same token, so the run it took starts at once instead
// of waiting for the reaper and ending in error without having run.
func TestRedTeamLostClaimIsReplayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tpl := e.template("noop", noopTemplate)
	st := &lostClaimStore{Store: e.store}
	cfg := fastConfig("")
	cfg.Lanes = []string{"A"}
	cfg.StaleAfter = 30 * time.Second // the reaper cannot be what rescues the run
	startDaemonOn(t, st, cfg, nil)
	id := e.submit(tpl, nil, "A", 100, "")
	status, msg := waitStatus(t, e.db.Pool, id, 15*time.Second, "success", "error")
	require.Equal(t, "success", status, msg)
	require.True(t, st.lost.Load(), "the claim's response was lost")
	var attempt, claimedEvents int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), `SELECT attempt,
		(SELECT count(*) FROM run_events WHERE run_id = r.id AND message LIKE 'claimed by %') FROM runs r WHERE id = $1`, id).
		Scan(&attempt, &claimedEvents))
	require.Equal(t, 1, attempt, "the run was claimed once and run by that claim")
	require.Equal(t, 1, claimedEvents)
}

// TestRedTeamShortStaleDaemonReapsNothingHealthy: a daemon (opsd dev, a
// bench, a misconfigured one) with a 1 s stale-after pointed at a shared
// database does not reap another daemon's healthy run that heartbeats
// every 2 s under a 30 s lease.
func TestRedTeamShortStaleDaemonReapsNothingHealthy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tpl := e.template("nap", sleepTemplate("action", "5s"))
	patient := fastConfig("patient")
	patient.Lanes = []string{"A"}
	patient.HeartbeatInterval, patient.StaleAfter = 2*time.Second, 30*time.Second
	startDaemonOn(t, e.store, patient, nil)
	id := e.submit(tpl, nil, "A", 100, "")
	waitFor(t, 10*time.Second, "the patient daemon to start the run", func() bool {
		var phase *string
		require.NoError(t, e.db.Pool.QueryRow(context.Background(), `SELECT phase FROM runs WHERE id = $1`, id).Scan(&phase))
		return phase != nil && *phase == executor.PhaseAction
	})

	hasty := fastConfig("hasty")
	hasty.Lanes = []string{"Z"} // it only reaps here
	hasty.HeartbeatInterval, hasty.StaleAfter, hasty.ReaperPeriod = 200*time.Millisecond, time.Second, 100*time.Millisecond
	reaps := &countingReaper{Store: e.store}
	startDaemonOn(t, reaps, hasty, nil)

	status, msg := waitStatus(t, e.db.Pool, id, 20*time.Second, "success", "error")
	require.Equal(t, "success", status, msg)
	require.Zero(t, testutilCount(t, e, `SELECT count(*) FROM run_events WHERE run_id = $1 AND message LIKE '%was lost%'`, id))
	require.Greater(t, reaps.calls.Load(), int64(3), "the hasty daemon's reaper ran while the run was healthy")
}

// countingReaper counts reaper passes.
type countingReaper struct {
	executor.Store
	calls atomic.Int64
}

func (s *countingReaper) ReapStale(ctx context.Context) ([]executor.ReapResult, error) {
	s.calls.Add(1)
	return s.Store.ReapStale(ctx)
}

func testutilCount(t *testing.T, e *env, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}
