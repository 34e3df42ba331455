package executor_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// reclaimRunbook plays the two attempts of a run that one daemon claims
// twice: attempt 1 blocks in preflight until released, deaf to its
// cancellation (a provider call slow to return); attempt 2 acts until it is
// stopped (for up to 30s, or 1s when quick is set). Each attempt records
// whether its context was cancelled; later attempts do nothing.
type reclaimRunbook struct {
	run *executor.Run
	s   *reclaimState
}

type reclaimState struct {
	quick     bool          // attempt 2's action lasts 1s, not 30s
	inPre1    chan struct{} // closed when attempt 1 is in preflight
	release1  chan struct{} // closed by the test to let attempt 1 return
	done1     chan struct{} // closed when attempt 1's preflight returned
	started2  chan struct{} // closed when attempt 2 begins
	acting2   chan struct{} // closed when attempt 2 is in its action phase
	canceled1 atomic.Bool   // attempt 1's context ended
	canceled2 atomic.Bool   // attempt 2's context ended while it acted
	once      sync.Once
}

func newReclaimState(quick bool) *reclaimState {
	return &reclaimState{quick: quick, inPre1: make(chan struct{}), release1: make(chan struct{}), done1: make(chan struct{}),
		started2: make(chan struct{}), acting2: make(chan struct{})}
}

// release lets attempt 1 return. Tests also register it as a cleanup after
// starting the daemon, so a failed test does not hold up the daemon's Stop.
func (s *reclaimState) release() { s.once.Do(func() { close(s.release1) }) }

func (r reclaimRunbook) Validate(context.Context, *executor.RunContext) error {
	if r.run.Attempt == 2 {
		close(r.s.started2)
	}
	return nil
}

func (r reclaimRunbook) Preflight(ctx context.Context, _ *executor.RunContext) error {
	if r.run.Attempt == 1 {
		context.AfterFunc(ctx, func() { r.s.canceled1.Store(true) })
		close(r.s.inPre1)
		select {
		case <-r.s.release1:
		case <-time.After(30 * time.Second):
		}
		close(r.s.done1)
	}
	return nil
}

func (r reclaimRunbook) Action(ctx context.Context, _ *executor.RunContext) error {
	if r.run.Attempt != 2 {
		return nil
	}
	close(r.s.acting2)
	d := 30 * time.Second
	if r.s.quick {
		d = time.Second
	}
	select {
	case <-ctx.Done():
		r.s.canceled2.Store(true)
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (r reclaimRunbook) Verify(context.Context, *executor.RunContext) error    { return nil }
func (r reclaimRunbook) Summarize(context.Context, *executor.RunContext) error { return nil }

func (s *reclaimState) resolver() executor.Resolver {
	return executor.ResolverFunc(func(_ context.Context, run *executor.Run) (executor.Runbook, error) {
		return reclaimRunbook{run: run, s: s}, nil
	})
}

// reapNow expires a run's lease and reaps it at once, as another daemon's
// reaper does when this daemon missed its heartbeats (paused, or cut off):
// a run before its action phase goes back to the queue.
func reapNow(t *testing.T, e *env, id string) {
	t.Helper()
	var action string
	require.NoError(t, pgx.BeginFunc(context.Background(), e.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(), `UPDATE runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, id); err != nil {
			return err
		}
		return tx.QueryRow(context.Background(), `SELECT action FROM reap_stale_runs() WHERE run_id = $1`, id).Scan(&action)
	}))
	require.Equal(t, "requeued", action)
}

func waitClosed(t *testing.T, ch <-chan struct{}, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// TestReclaimedRunStopsStaleAttempt: when a daemon claims again a run it is
// still executing (its lease was reaped while an attempt was slow to stop),
// the old attempt is stopped at once, and its exit leaves the new attempt in
// the daemon's care: heartbeats keep renewing the new lease, and an
// operator's cancel reaches it.
func TestReclaimedRunStopsStaleAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	s := newReclaimState(false)
	cfg := fastConfig("")
	startDaemonOn(t, e.store, cfg, s.resolver())
	t.Cleanup(s.release)
	var id string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, max_attempts) VALUES ('dev', 'healthcheck', 3) RETURNING id`).Scan(&id))
	waitClosed(t, s.inPre1, 10*time.Second, "attempt 1 in preflight")

	reapNow(t, e, id)
	waitClosed(t, s.acting2, 10*time.Second, "attempt 2 to act")
	waitFor(t, 2*time.Second, "attempt 1 to be told to stop", s.canceled1.Load)

	s.release()
	waitClosed(t, s.done1, 5*time.Second, "attempt 1 to return")
	// Long enough for attempt 2's lease to run out unless heartbeats renew it.
	time.Sleep(cfg.StaleAfter + 2*cfg.ReaperPeriod)
	var status string
	var attempt int
	var leased bool
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT status, attempt, coalesce(lease_expires_at > now(), false) FROM runs WHERE id = $1`, id).
		Scan(&status, &attempt, &leased))
	require.Equal(t, "running", status, "attempt 2 still holds the run")
	require.Equal(t, 2, attempt)
	require.True(t, leased, "heartbeats renew attempt 2's lease")
	require.False(t, s.canceled2.Load(), "attempt 1's exit did not stop attempt 2")

	ok, err := e.store.CancelRun(ctx, id)
	require.NoError(t, err)
	require.True(t, ok)
	waitFor(t, 5*time.Second, "the operator's cancel to reach attempt 2", s.canceled2.Load)
	status, msg := waitStatus(t, e.db.Pool, id, 10*time.Second, "canceled")
	require.Equal(t, "canceled", status, msg)
	require.Equal(t, 1, testutilCount(t, e,
		`SELECT count(*) FROM run_events WHERE run_id = $1 AND message LIKE 'run canceled in phase action%'`, id),
		"attempt 2 finished the run as canceled itself")
}

// lateHeartbeatStore, once armed, holds the answer of the heartbeat that
// still carries attempt 1's lease until attempt 2 of the same run has
// started, so the answer (lost) arrives when the daemon already runs attempt
// 2; it holds claims until that heartbeat has been answered, so the order is
// certain.
type lateHeartbeatStore struct {
	executor.Store
	runID    string
	mu       sync.RWMutex // held for reading by claims, so arm waits out one under way
	armed    atomic.Bool
	answered chan struct{} // closed once the store answered the heartbeat of attempt 1
	started2 <-chan struct{}
}

func (s *lateHeartbeatStore) arm() {
	s.mu.Lock()
	s.armed.Store(true)
	s.mu.Unlock()
}

func (s *lateHeartbeatStore) Heartbeat(ctx context.Context, worker string, leases []executor.Lease, leaseFor time.Duration) ([]executor.LeaseState, error) {
	states, err := s.Store.Heartbeat(ctx, worker, leases, leaseFor)
	if s.armed.Load() && slices.Contains(leases, executor.Lease{RunID: s.runID, Worker: worker, Attempt: 1}) {
		s.armed.Store(false)
		close(s.answered)
		select {
		case <-s.started2:
		case <-time.After(10 * time.Second):
		}
	}
	return states, err
}

func (s *lateHeartbeatStore) ClaimRuns(ctx context.Context, req executor.ClaimRequest) ([]*executor.Run, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.armed.Load() {
		select {
		case <-s.answered:
		case <-time.After(10 * time.Second):
		}
	}
	return s.Store.ClaimRuns(ctx, req)
}

// TestLateHeartbeatAnswerSparesNewAttempt: a heartbeat answer saying attempt
// 1's lease is lost, arriving after the daemon claimed the run again as
// attempt 2, stops attempt 1 only; attempt 2 runs to its end and finishes
// the run.
func TestLateHeartbeatAnswerSparesNewAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	s := newReclaimState(true)
	st := &lateHeartbeatStore{Store: e.store, answered: make(chan struct{}), started2: s.started2}
	startDaemonOn(t, st, fastConfig(""), s.resolver())
	t.Cleanup(s.release)
	require.NoError(t, e.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, max_attempts) VALUES ('dev', 'healthcheck', 3) RETURNING id`).Scan(&st.runID))
	waitClosed(t, s.inPre1, 10*time.Second, "attempt 1 in preflight")

	st.arm()
	reapNow(t, e, st.runID)
	waitClosed(t, st.answered, 5*time.Second, "the heartbeat of attempt 1")
	waitClosed(t, s.started2, 10*time.Second, "attempt 2 to start")
	waitFor(t, 5*time.Second, "attempt 1 to be told to stop", s.canceled1.Load)
	s.release()

	status, msg := waitStatus(t, e.db.Pool, st.runID, 10*time.Second, "success", "error", "canceled")
	require.Equal(t, "success", status, msg)
	var attempt int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT attempt FROM runs WHERE id = $1`, st.runID).Scan(&attempt))
	require.Equal(t, 2, attempt, "attempt 2 finished the run")
	require.False(t, s.canceled2.Load(), "attempt 2 was never stopped")
}
