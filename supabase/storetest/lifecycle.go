package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/uuid"
)

// testClaimHeartbeatFinish: a claim hands out a lease; every write that
// changes a run's state is fenced by worker and attempt.
func testClaimHeartbeatFinish(t *testing.T, f *fixture) {
	id1 := f.seedRun("A", "")
	id2 := f.seedRun("A", "")
	r := f.claim("w1", "A", 1, 1)[0]
	assert.Equal(t, id1, r.ID, "the oldest run first")
	assert.Equal(t, executor.StatusRunning, r.Status)
	assert.Equal(t, "w1", deref(r.ClaimedBy))
	assert.Equal(t, 1, r.Attempt)
	assert.Equal(t, 1, r.NextSeq)
	assert.NotNil(t, r.StartedAt)
	assert.NotNil(t, r.ClaimedAt)
	assert.NotNil(t, r.HeartbeatAt)
	l := lease(r)

	hb := f.heartbeat("w1", []executor.Lease{l, {RunID: id2, Worker: "w1", Attempt: 1}})
	assert.Equal(t, executor.LeaseState{RunID: id1, State: executor.LeaseOwned}, hb[id1])
	assert.Equal(t, executor.LeaseLost, hb[id2].State, "a run not claimed is not ours")
	hb = f.heartbeat("w2", []executor.Lease{{RunID: id1, Worker: "w2", Attempt: 1}})
	assert.Equal(t, executor.LeaseLost, hb[id1].State, "another worker")
	hb = f.heartbeat("w1", []executor.Lease{{RunID: id1, Worker: "w1", Attempt: 2}})
	assert.Equal(t, executor.LeaseLost, hb[id1].State, "another attempt")
	none, err := f.st.Heartbeat(f.ctx, "w1", nil, time.Minute)
	require.NoError(t, err)
	assert.Empty(t, none)

	ok, err := f.st.SetPhase(f.ctx, l, executor.PhaseValidate)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, executor.PhaseValidate, deref(f.run(id1).Phase))
	ok, err = f.st.SetPhase(f.ctx, executor.Lease{RunID: id1, Worker: "w2", Attempt: 1}, executor.PhaseAction)
	require.NoError(t, err)
	assert.False(t, ok, "set phase is fenced")
	_, err = f.st.SetPhase(f.ctx, l, "dance")
	requireKind(t, err, executor.ErrInvalidInput, "unknown phase")

	ok, err = f.st.FinishRun(f.ctx, executor.Finish{Lease: executor.Lease{RunID: id1, Worker: "w2", Attempt: 1}, Status: executor.StatusSuccess})
	require.NoError(t, err)
	assert.False(t, ok, "finish is fenced")
	_, err = f.st.FinishRun(f.ctx, executor.Finish{Lease: l, Status: "done"})
	requireKind(t, err, executor.ErrInvalidInput, "finish with a status outside success/error/canceled")

	out := json.RawMessage(`{"url":"https://web.example.app","checks":[1,2]}`)
	ok, err = f.st.FinishRun(f.ctx, executor.Finish{Lease: l, Status: executor.StatusSuccess, Output: out})
	require.NoError(t, err)
	assert.True(t, ok)
	done := f.run(id1)
	assert.Equal(t, executor.StatusSuccess, done.Status)
	assert.NotNil(t, done.FinishedAt)
	assert.Nil(t, done.ErrorMessage)
	assert.JSONEq(t, string(out), string(done.Output))
	assert.True(t, done.Terminal())

	ok, err = f.st.FinishRun(f.ctx, executor.Finish{Lease: l, Status: executor.StatusError, ErrorMessage: "late"})
	require.NoError(t, err)
	assert.False(t, ok, "a finished run is finished once")
	assert.Equal(t, executor.StatusSuccess, f.run(id1).Status)
	hb = f.heartbeat("w1", []executor.Lease{l})
	assert.Equal(t, executor.LeaseLost, hb[id1].State, "a finished run's lease is gone")
	ok, err = f.st.SetPhase(f.ctx, l, executor.PhaseSummarize)
	require.NoError(t, err)
	assert.False(t, ok)

	// An operator cancel reaches the worker through its heartbeat; the run
	// stays canceled whatever status the worker finishes with.
	r2 := f.claim("w1", "A", 1, 1)[0]
	assert.Equal(t, id2, r2.ID)
	ok, err = f.st.CancelRun(f.ctx, id2)
	require.NoError(t, err)
	assert.True(t, ok)
	hb = f.heartbeat("w1", []executor.Lease{lease(r2)})
	assert.Equal(t, executor.LeaseCanceled, hb[id2].State)
	ok, err = f.st.FinishRun(f.ctx, executor.Finish{Lease: lease(r2), Status: executor.StatusError, ErrorMessage: "stopped: canceled"})
	require.NoError(t, err)
	assert.True(t, ok)
	c := f.run(id2)
	assert.Equal(t, executor.StatusCanceled, c.Status)
	assert.NotNil(t, c.FinishedAt)
	assert.NotNil(t, c.CanceledAt)
	assert.Equal(t, "stopped: canceled", deref(c.ErrorMessage))

	f.claim("w1", "A", 5, 0) // nothing left
}

// testClaimToken: replaying a claim token returns the runs that claim took.
func testClaimToken(t *testing.T, f *fixture) {
	ids := []string{f.seedRun("C", ""), f.seedRun("C", ""), f.seedRun("C", "")}
	tok := uuid.New()
	req := executor.ClaimRequest{Worker: "w1", Lane: "C", Limit: 2, Token: tok}
	first, err := f.st.ClaimRuns(f.ctx, req)
	require.NoError(t, err)
	require.Len(t, first, 2)
	for range 2 {
		again, err := f.st.ClaimRuns(f.ctx, req)
		require.NoError(t, err)
		assert.ElementsMatch(t, runIDs(first), runIDs(again), "a replayed token returns the same runs")
		for _, r := range again {
			assert.Equal(t, 1, r.Attempt, "a replay does not claim again")
		}
	}
	assert.Equal(t, 2, f.count(`SELECT count(*) FROM public.runs WHERE status = 'running'`))
	rest := f.claim("w1", "C", 2, 1)
	assert.Equal(t, ids[2], rest[0].ID, "a new token claims what is left")

	// A claim without a token works too (the store may add one).
	f.seedRun("C", "")
	runs, err := f.st.ClaimRuns(f.ctx, executor.ClaimRequest{Worker: "w2", Lane: "C", Limit: 1})
	require.NoError(t, err)
	assert.Len(t, runs, 1)
}

func runIDs(runs []*executor.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

// testLaneRule: within a session a lane runs one run at a time, in priority
// then created_at order; runs without a session are not serialized.
func testLaneRule(t *testing.T, f *fixture) {
	sess := f.seedSession()
	first := f.seedRun("D", sess)
	second := f.seedRun("D", sess)
	urgent := f.seedRun("D", sess)
	f.exec(`UPDATE public.runs SET priority = 10 WHERE id = $1`, urgent)

	got := f.claim("w1", "D", 5, 1)
	assert.Equal(t, urgent, got[0].ID, "lower priority value first")
	f.claim("w2", "D", 5, 0)
	ok, err := f.st.FinishRun(f.ctx, executor.Finish{Lease: lease(got[0]), Status: executor.StatusSuccess})
	require.NoError(t, err)
	require.True(t, ok)
	got = f.claim("w2", "D", 5, 1)
	assert.Equal(t, first, got[0].ID, "then created_at order")
	f.exec(`UPDATE public.runs SET status = 'error', finished_at = now() WHERE id = $1`, got[0].ID)
	assert.Equal(t, second, f.claim("w1", "D", 5, 1)[0].ID)

	f.seedRun("E", "")
	f.seedRun("E", "")
	other := f.seedSession()
	f.seedRun("E", other)
	f.seedRun("E", other)
	assert.Len(t, f.claim("w1", "E", 10, 3), 3, "two sessionless runs and the head of the session")
}

// testReleaseAndReap: a released run goes back to the queue with its
// attempt given back; the reaper requeues runs lost before their action
// phase (while attempts are left) and fails the others.
func testReleaseAndReap(t *testing.T, f *fixture) {
	id := f.seedRun("R", "")
	r := f.claim("w1", "R", 1, 1)[0]
	ok, err := f.st.SetPhase(f.ctx, lease(r), executor.PhasePreflight)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = f.st.ReleaseRun(f.ctx, lease(r), "graceful shutdown")
	require.NoError(t, err)
	assert.True(t, ok)
	back := f.run(id)
	assert.Equal(t, executor.StatusQueued, back.Status)
	assert.Nil(t, back.ClaimedBy)
	assert.Nil(t, back.Phase)
	assert.Equal(t, 1, back.Attempt, "attempt is the fencing token: it never goes back")
	assert.Zero(t, back.AttemptsUsed, "a release does not use up one of max_attempts")
	events, err := f.st.ListEvents(f.ctx, id, 0, 10)
	require.NoError(t, err)
	require.Len(t, events, 1, "a release is logged")
	assert.Equal(t, "System", events[0].Source)
	assert.Contains(t, events[0].Message, "graceful shutdown")
	ok, err = f.st.ReleaseRun(f.ctx, lease(r), "again")
	require.NoError(t, err)
	assert.False(t, ok, "release is fenced")

	again := f.claim("w2", "R", 1, 1)[0]
	assert.Equal(t, id, again.ID)
	assert.Equal(t, 2, again.Attempt, "a new claim is a new attempt")
	assert.Equal(t, 1, again.AttemptsUsed)
	assert.Equal(t, 2, again.NextSeq, "next_seq follows the events already written")

	// Three runs held by w9: early (lost in validate, attempts left),
	// late (lost in action) and fresh (still heartbeating).
	early, late, fresh := f.seedRun("S", ""), f.seedRun("S", ""), f.seedRun("S", "")
	f.exec(`UPDATE public.runs SET max_attempts = 2 WHERE id = $1`, early)
	held := f.claim("w9", "S", 3, 3)
	byID := map[string]*executor.Run{}
	for _, h := range held {
		byID[h.ID] = h
	}
	for id, phase := range map[string]string{early: executor.PhaseValidate, late: executor.PhaseAction, fresh: executor.PhaseAction} {
		ok, err := f.st.SetPhase(f.ctx, lease(byID[id]), phase)
		require.NoError(t, err)
		require.True(t, ok)
	}
	f.exec(`UPDATE public.runs SET lease_expires_at = now() - interval '1 second' WHERE id = ANY($1::uuid[])`, []string{early, late})

	reaped, err := f.st.ReapStale(f.ctx)
	require.NoError(t, err)
	require.Len(t, reaped, 2)
	slices.SortFunc(reaped, func(a, b executor.ReapResult) int {
		return slices.Index([]string{early, late}, a.RunID) - slices.Index([]string{early, late}, b.RunID)
	})
	assert.Equal(t, executor.ReapResult{RunID: early, Action: "requeued", Phase: executor.PhaseValidate, Worker: "w9"}, reaped[0])
	assert.Equal(t, executor.ReapResult{RunID: late, Action: "errored", Phase: executor.PhaseAction, Worker: "w9"}, reaped[1])
	assert.Equal(t, executor.StatusQueued, f.run(early).Status)
	failed := f.run(late)
	assert.Equal(t, executor.StatusError, failed.Status)
	assert.NotEmpty(t, deref(failed.ErrorMessage))
	hb := f.heartbeat("w9", []executor.Lease{lease(byID[early]), lease(byID[late]), lease(byID[fresh])})
	assert.Equal(t, executor.LeaseLost, hb[early].State)
	assert.Equal(t, executor.LeaseLost, hb[late].State)
	assert.Equal(t, executor.LeaseOwned, hb[fresh].State)

	reaped, err = f.st.ReapStale(f.ctx)
	require.NoError(t, err)
	assert.Empty(t, reaped, "nothing is reaped twice")
}

func testCancelAndApprove(t *testing.T, f *fixture) {
	queued := f.seedRun("A", "")
	ok, err := f.st.CancelRun(f.ctx, queued)
	require.NoError(t, err)
	assert.True(t, ok)
	c := f.run(queued)
	assert.Equal(t, executor.StatusCanceled, c.Status)
	assert.NotNil(t, c.CanceledAt)
	assert.NotNil(t, c.FinishedAt, "a queued run canceled is finished at once")
	ok, err = f.st.CancelRun(f.ctx, queued)
	require.NoError(t, err)
	assert.False(t, ok, "a terminal run is not canceled again")
	ok, err = f.st.CancelRun(f.ctx, uuid.New())
	require.NoError(t, err)
	assert.False(t, ok, "no such run")
	f.claim("w1", "A", 1, 0)

	waiting := f.seedRun("B", "")
	ok, err = f.st.ApproveRun(f.ctx, waiting, "alice")
	require.NoError(t, err)
	assert.True(t, ok)
	a := f.run(waiting)
	assert.Equal(t, "operator:alice", deref(a.ApprovedBy), "the operator CLI's approvals are recorded as such")
	assert.NotNil(t, a.ApprovedAt)
	ok, err = f.st.ApproveRun(f.ctx, waiting, "bob")
	require.NoError(t, err)
	assert.False(t, ok, "approved once")
	assert.Equal(t, "operator:alice", deref(f.run(waiting).ApprovedBy))
	r := f.claim("w1", "B", 1, 1)[0]
	hb := f.heartbeat("w1", []executor.Lease{lease(r)})
	assert.Equal(t, executor.LeaseState{RunID: waiting, State: executor.LeaseOwned, Approved: true, ApprovedBy: "operator:alice"}, hb[waiting])
	_, err = f.st.ApproveRun(f.ctx, uuid.New(), "alice")
	requireKind(t, err, executor.ErrNotFound, "approving a run that does not exist")
	_, err = f.st.ApproveRun(f.ctx, r.ID, "")
	requireKind(t, err, executor.ErrInvalidInput, "an operator's approval names the operator")

	// A rejection of a running run reaches its daemon with the reason.
	rejected := f.seedRun("J", "")
	rj := f.claim("w1", "J", 1, 1)[0]
	ok, err = f.st.RejectRun(f.ctx, rejected, "carol", "not during the freeze")
	require.NoError(t, err)
	assert.True(t, ok)
	hb = f.heartbeat("w1", []executor.Lease{lease(rj)})
	assert.Equal(t, executor.LeaseState{RunID: rejected, State: executor.LeaseCanceled,
		Message: "rejected by operator:carol: not during the freeze"}, hb[rejected])
	ok, err = f.st.RejectRun(f.ctx, rejected, "carol", "again")
	require.NoError(t, err)
	assert.False(t, ok, "rejected once")
	ok, err = f.st.RejectRun(f.ctx, queued, "carol", "too late")
	require.NoError(t, err)
	assert.False(t, ok, "a finished run is not rejected")
	ok, err = f.st.FinishRun(f.ctx, executor.Finish{Lease: lease(rj), Status: executor.StatusCanceled, ErrorMessage: "canceled by operator during approval"})
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "rejected by operator:carol: not during the freeze", deref(f.run(rejected).ErrorMessage),
		"the rejection's reason survives the finish")
}
