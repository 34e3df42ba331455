package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/uuid"
)

// testConcurrentUse: one store shared by many goroutines (as the daemon
// shares it between run goroutines, the heartbeat loop and the claimer).
// Run under -race.
func testConcurrentUse(t *testing.T, f *fixture) {
	const writers, batches, perBatch = 8, 5, 5
	id := f.seedRun("A", "")
	r := f.claim("w1", "A", 1, 1)[0]
	for i := 0; i < 4; i++ {
		f.seedRun("Q", "")
	}

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	report := func(err error) {
		if err != nil {
			errs <- err
		}
	}
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			var last []executor.Event
			for b := 0; b < batches; b++ {
				last = last[:0]
				for i := 0; i < perBatch; i++ {
					seq := 1 + w*batches*perBatch + b*perBatch + i
					last = append(last, executor.Event{RunID: id, Seq: seq, Level: executor.LevelInfo,
						Source: "System", Message: fmt.Sprintf("writer %d event %d", w, seq)})
				}
				report(f.appendRows(lease(r), last, nil))
			}
			report(f.appendRows(lease(r), last, nil)) // a replay among the others
		})
	}
	for h := 0; h < 2; h++ {
		wg.Go(func() {
			for i := 0; i < 10; i++ {
				got, err := f.st.Heartbeat(f.ctx, "w1", []executor.Lease{lease(r)}, 30*time.Second)
				report(err)
				if err == nil && (len(got) != 1 || got[0].State != executor.LeaseOwned) {
					report(fmt.Errorf("heartbeat: %+v", got))
				}
			}
		})
	}
	for c := 0; c < 4; c++ {
		wg.Go(func() {
			_, err := f.st.ClaimRuns(f.ctx, executor.ClaimRequest{Worker: fmt.Sprintf("c%d", c), Lane: "Q", Limit: 1, Token: uuid.New()})
			report(err)
		})
	}
	wg.Go(func() {
		for i := 0; i < 5; i++ {
			_, err := f.st.ListEvents(f.ctx, id, 0, 50)
			report(err)
			_, err = f.st.GetRun(f.ctx, id)
			report(err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := writers * batches * perBatch
	assert.Equal(t, total, f.count(`SELECT count(*) FROM public.run_events WHERE run_id = $1`, id))
	assert.Equal(t, total, f.count(`SELECT max(seq) FROM public.run_events WHERE run_id = $1`, id), "seq 1..n without gaps")
	assert.Equal(t, 4, f.count(`SELECT count(*) FROM public.runs WHERE lane = 'Q' AND status = 'running'`),
		"concurrent claimers never take the same run twice")
	assert.Equal(t, 4, f.count(`SELECT count(DISTINCT claimed_by) FROM public.runs WHERE lane = 'Q'`))
}

func testSchemaPingWakeups(t *testing.T, f *fixture) {
	require.NoError(t, f.st.Ping(f.ctx))
	v, err := f.st.SchemaVersion(f.ctx)
	require.NoError(t, err)
	assert.NotEmpty(t, v)
	assert.Equal(t, deref(f.text(`SELECT public.opsd_schema_version()`)), v)

	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	ch := f.st.Wakeups(ctx)
	if ch == nil {
		return // this backend cannot push; the daemon polls
	}
	_, err = f.st.SubmitRun(f.ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Lane: "W"})
	require.NoError(t, err)
	select {
	case lane := <-ch:
		assert.Contains(t, []string{"W", ""}, lane)
	case <-time.After(10 * time.Second):
		t.Fatal("no wakeup for a new queued run")
	}
}

// testLostResponses: the backend commits a request and the response never
// arrives. Calls that are safe to repeat recover by retrying; plain inserts
// are not repeated, so they fail without ever writing twice.
func testLostResponses(t *testing.T, f *fixture) {
	lose := f.env.LoseNextResponse
	if lose == nil {
		t.Skip("this backend cannot lose a response after commit")
	}
	first := f.seedRun("L", "")
	second := f.seedRun("L", "")

	lose("rpc/claim_run")
	runs, err := f.st.ClaimRuns(f.ctx, executor.ClaimRequest{Worker: "w1", Lane: "L", Limit: 1, Token: uuid.New()})
	require.NoError(t, err, "the retry replays the claim token")
	require.Len(t, runs, 1)
	assert.Equal(t, first, runs[0].ID)
	assert.Equal(t, 1, runs[0].Attempt)
	assert.Equal(t, 1, f.count(`SELECT count(*) FROM public.runs WHERE status = 'running'`), "one run claimed, not two")
	assert.Equal(t, executor.StatusQueued, f.run(second).Status)
	lose("rpc/claim_run")
	runs, err = f.st.ClaimRuns(f.ctx, executor.ClaimRequest{Worker: "w1", Lane: "L", Limit: 1})
	require.NoError(t, err, "a claim without a token gets one")
	require.Len(t, runs, 1)
	assert.Equal(t, second, runs[0].ID)
	assert.Equal(t, 0, f.count(`SELECT count(*) FROM public.runs WHERE status = 'running' AND (claimed_by IS NULL OR claimed_by <> 'w1')`),
		"nothing is left claimed by nobody")
	l := lease(runs[0])

	lose("rpc/heartbeat_runs")
	hb := f.heartbeat("w1", []executor.Lease{l})
	assert.Equal(t, executor.LeaseOwned, hb[second].State)

	lose("rpc/append_run_rows")
	events := []executor.Event{
		{RunID: second, Seq: 1, Level: "info", Source: "System", Message: "one"},
		{RunID: second, Seq: 2, Level: "info", Source: "System", Message: "two"},
	}
	require.NoError(t, f.appendRows(l, events, nil))
	assert.Equal(t, 2, f.count(`SELECT count(*) FROM public.run_events WHERE run_id = $1`, second))

	lose("rpc/put_artifact")
	err = f.st.PutArtifact(f.ctx, l, executor.Artifact{RunID: second, Kind: "link", Title: "lost", Value: "https://x.example"})
	requireKind(t, err, executor.ErrTransient, "an artifact whose response was lost")
	assert.Equal(t, 1, f.count(`SELECT count(*) FROM public.artifacts WHERE title = 'lost'`))

	lose("rpc/set_run_phase")
	ok, err := f.st.SetPhase(f.ctx, l, executor.PhaseAction)
	require.NoError(t, err)
	assert.True(t, ok)

	lose("rpc/finish_run")
	ok, err = f.st.FinishRun(f.ctx, executor.Finish{Lease: l, Status: executor.StatusError, ErrorMessage: "deploy failed"})
	require.NoError(t, err)
	assert.True(t, ok, "a replayed finish that committed is reported as done")
	assert.Equal(t, executor.StatusError, f.run(second).Status)

	lose("rpc/cancel_run")
	ok, err = f.st.CancelRun(f.ctx, first)
	require.NoError(t, err)
	assert.True(t, ok, "a replayed cancel that committed is reported as done")

	lose("runs")
	_, err = f.st.SubmitRun(f.ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Intent: "lost submit"})
	requireKind(t, err, executor.ErrTransient, "a submit whose response was lost")
	assert.Equal(t, 1, f.count(`SELECT count(*) FROM public.runs WHERE intent = 'lost submit'`),
		"the submit committed once and was not repeated")

}
