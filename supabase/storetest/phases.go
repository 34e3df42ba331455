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
