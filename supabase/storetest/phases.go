package storetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// testBatchedPhases: phase changes written with a batch of rows are fenced
// by their attempt, the newest change of a run in a batch wins, and a run's
// phase never moves back (a late batch cannot undo the change into action).
func testBatchedPhases(t *testing.T, f *fixture) {
	id, l := f.seedClaimed()
	phase := func() string {
		t.Helper()
		r := f.run(id)
		require.NotNil(t, r.Phase)
		return *r.Phase
	}
	pc := func(p string) executor.PhaseChange {
		return executor.PhaseChange{RunID: id, Attempt: l.Attempt, Phase: p}
	}

	refused, err := f.st.AppendRows(f.ctx, l.Worker, executor.Rows{Phases: []executor.PhaseChange{pc(executor.PhasePreflight)}})
	require.NoError(t, err)
	assert.Empty(t, refused)
	assert.Equal(t, executor.PhasePreflight, phase(), "a batched phase change alone is stored")

	// With events, and two changes of one run in a batch: the later wins.
	refused, err = f.st.AppendRows(f.ctx, l.Worker, executor.Rows{
		Events: []executor.Event{{RunID: id, Seq: 1, Level: executor.LevelInfo, Source: "System", Message: "m", Attempt: l.Attempt}},
		Phases: []executor.PhaseChange{pc(executor.PhaseVerify), pc(executor.PhaseSummarize)},
	})
	require.NoError(t, err)
	assert.Empty(t, refused)
	assert.Equal(t, executor.PhaseSummarize, phase(), "the newest change of the batch")

	// Backwards is ignored, and so is a replay.
	refused, err = f.st.AppendRows(f.ctx, l.Worker, executor.Rows{Phases: []executor.PhaseChange{pc(executor.PhasePreflight)}})
	require.NoError(t, err)
	assert.Empty(t, refused)
	assert.Equal(t, executor.PhaseSummarize, phase(), "a phase never moves back")

	// Another worker, or a stale attempt, is refused and changes nothing.
	id2, l2 := f.seedClaimed()
	refused, err = f.st.AppendRows(f.ctx, "w2", executor.Rows{Phases: []executor.PhaseChange{
		{RunID: id2, Attempt: l2.Attempt, Phase: executor.PhaseAction}}})
	require.NoError(t, err)
	assert.Equal(t, []executor.Lease{{RunID: id2, Worker: "w2", Attempt: l2.Attempt}}, refused)
	refused, err = f.st.AppendRows(f.ctx, l2.Worker, executor.Rows{Phases: []executor.PhaseChange{
		{RunID: id2, Attempt: l2.Attempt + 1, Phase: executor.PhaseAction}}})
	require.NoError(t, err)
	assert.Equal(t, []executor.Lease{{RunID: id2, Worker: l2.Worker, Attempt: l2.Attempt + 1}}, refused)
	r2 := f.run(id2)
	require.NotNil(t, r2.Phase)
	assert.Equal(t, executor.PhaseValidate, *r2.Phase, "refused changes are not stored")

	// An unknown phase is invalid input, like SetPhase's.
	_, err = f.st.AppendRows(f.ctx, l2.Worker, executor.Rows{Phases: []executor.PhaseChange{
		{RunID: id2, Attempt: l2.Attempt, Phase: "dance"}}})
	requireKind(t, err, executor.ErrInvalidInput, "unknown phase")
}

// testBatchedFinishes: finishes written with a batch of rows are fenced by
// their lease, land with their final event in the same transaction, keep a
// canceled run canceled, and a replay is refused without a second event.
func testBatchedFinishes(t *testing.T, f *fixture) {
	id1, l1 := f.seedClaimed()
	id2, l2 := f.seedClaimed()
	id3, l3 := f.seedClaimed()
	final := func(id string, attempt, seq int, msg string) []executor.Event {
		return []executor.Event{{RunID: id, Seq: seq, Level: executor.LevelInfo, Source: "System", Message: msg, Attempt: attempt}}
	}
	ok, err := f.st.CancelRun(f.ctx, id3)
	require.NoError(t, err)
	require.True(t, ok)

	refused, err := f.st.AppendRows(f.ctx, l1.Worker, executor.Rows{
		Events: []executor.Event{{RunID: id1, Seq: 1, Level: executor.LevelInfo, Source: "System", Message: "work", Attempt: l1.Attempt}},
		Finishes: []executor.Finish{
			{Lease: l1, Status: executor.StatusSuccess, Output: []byte(`{"n":1}`), Events: final(id1, l1.Attempt, 2, "done")},
			{Lease: executor.Lease{RunID: id2, Worker: l2.Worker, Attempt: l2.Attempt + 1}, Status: executor.StatusSuccess,
				Events: final(id2, l2.Attempt+1, 1, "stale attempt")},
			{Lease: l3, Status: executor.StatusError, ErrorMessage: "boom", Events: final(id3, l3.Attempt, 2, "too late")},
		},
	})
	require.NoError(t, err)
	assert.Equal(t, []executor.Lease{{RunID: id2, Worker: l2.Worker, Attempt: l2.Attempt + 1}}, refused, "only the stale attempt")

	r1 := f.run(id1)
	assert.Equal(t, executor.StatusSuccess, r1.Status)
	assert.NotNil(t, r1.FinishedAt)
	assert.JSONEq(t, `{"n":1}`, string(r1.Output))
	evs, err := f.st.ListEvents(f.ctx, id1, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, "done", evs[1].Message, "the final event with the status")

	r2 := f.run(id2)
	assert.Equal(t, executor.StatusRunning, r2.Status, "a refused finish changes nothing")
	evs, err = f.st.ListEvents(f.ctx, id2, 0, 10)
	require.NoError(t, err)
	assert.Empty(t, evs, "nor stores its event")

	r3 := f.run(id3)
	assert.Equal(t, executor.StatusCanceled, r3.Status, "a canceled run stays canceled")
	assert.NotNil(t, r3.FinishedAt)

	// A replay (a lost response) is refused and adds nothing.
	refused, err = f.st.AppendRows(f.ctx, l1.Worker, executor.Rows{Finishes: []executor.Finish{
		{Lease: l1, Status: executor.StatusError, ErrorMessage: "again", Events: final(id1, l1.Attempt, 3, "again")}}})
	require.NoError(t, err)
	assert.Equal(t, []executor.Lease{l1}, refused)
	r1 = f.run(id1)
	assert.Equal(t, executor.StatusSuccess, r1.Status)
	evs, err = f.st.ListEvents(f.ctx, id1, 0, 10)
	require.NoError(t, err)
	assert.Len(t, evs, 2)

	_, err = f.st.AppendRows(f.ctx, l2.Worker, executor.Rows{Finishes: []executor.Finish{{Lease: l2, Status: "done"}}})
	requireKind(t, err, executor.ErrInvalidInput, "unknown status")
}
