package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/uuid"
)

// errorCase is a call that must fail with an error of kind.
type errorCase struct {
	name string
	kind error
	call func() error
}

// requireErrorKinds checks each case fails with its kind, and that none of
// these failures is retryable.
func requireErrorKinds(t *testing.T, cases []errorCase) {
	for _, c := range cases {
		err := c.call()
		requireKind(t, err, c.kind, c.name)
		assert.False(t, executor.Retryable(err), "%s: not retryable: %v", c.name, err)
	}
}

// testOperatorErrorMapping: the operator's calls fail with
// *executor.StoreError of the right kind, and none of these is retryable.
func testOperatorErrorMapping(t *testing.T, f *fixture) {
	requireErrorKinds(t, []errorCase{
		{"get a run that does not exist", executor.ErrNotFound, func() error {
			_, err := f.st.GetRun(f.ctx, uuid.New())
			return err
		}},
		{"get a run by a malformed id", executor.ErrInvalidInput, func() error {
			_, err := f.st.GetRun(f.ctx, "not-a-uuid")
			return err
		}},
		{"submit to an unknown env", executor.ErrInvalidInput, func() error {
			_, err := f.st.SubmitRun(f.ctx, executor.NewRun{Env: "mars", Kind: "deploy"})
			return err
		}},
		{"submit an unknown kind", executor.ErrInvalidInput, func() error {
			_, err := f.st.SubmitRun(f.ctx, executor.NewRun{Env: "dev", Kind: "launch-missiles"})
			return err
		}},
		{"submit into a session that does not exist", executor.ErrConflict, func() error {
			sess := uuid.New()
			_, err := f.st.SubmitRun(f.ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", SessionID: &sess})
			return err
		}},
	})
	assert.Equal(t, 0, f.count(`SELECT count(*) FROM public.runs`), "failed submits wrote nothing")
}

// testErrorMapping: the daemon's calls fail with *executor.StoreError of the
// right kind, and none of these is retryable.
func testErrorMapping(t *testing.T, f *fixture) {
	id, l := f.seedClaimed()
	requireErrorKinds(t, []errorCase{
		{"append an event of an unknown level", executor.ErrInvalidInput, func() error {
			return f.appendRows(l, []executor.Event{{RunID: id, Seq: 1, Level: "loud", Source: "System", Message: "x"}}, nil)
		}},
		{"append an event without its attempt", executor.ErrInvalidInput, func() error {
			_, err := f.st.AppendRows(f.ctx, "w1", executor.Rows{Events: []executor.Event{{RunID: id, Seq: 1, Level: "info", Source: "System", Message: "x"}}})
			return err
		}},
		{"put an artifact of an unknown kind", executor.ErrInvalidInput, func() error {
			return f.st.PutArtifact(f.ctx, l, executor.Artifact{RunID: id, Kind: "video", Title: "x", Value: "y"})
		}},
		{"put an artifact of a run that does not exist", executor.ErrLeaseLost, func() error {
			missing := executor.Lease{RunID: uuid.New(), Worker: "w1", Attempt: 1}
			return f.st.PutArtifact(f.ctx, missing, executor.Artifact{RunID: missing.RunID, Kind: "link", Title: "x", Value: "y"})
		}},
		{"claim without a worker id", executor.ErrInvalidInput, func() error {
			_, err := f.st.ClaimRuns(f.ctx, executor.ClaimRequest{Worker: "", Lane: "A", Limit: 1, Token: uuid.New()})
			return err
		}},
		{"claim with a malformed token", executor.ErrInvalidInput, func() error {
			_, err := f.st.ClaimRuns(f.ctx, executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 1, Token: "tok"})
			return err
		}},
		{"heartbeat a malformed run id", executor.ErrInvalidInput, func() error {
			_, err := f.st.Heartbeat(f.ctx, "w1", []executor.Lease{{RunID: "nope", Worker: "w1", Attempt: 1}}, time.Minute)
			return err
		}},
	})
	assert.Equal(t, 0, f.count(`SELECT count(*) FROM public.run_events`), "failed batches wrote nothing")

	// A function missing (migrations pending) is no fault of the rows: not
	// found, which the writer retries instead of dropping rows one by one.
	f.exec(`ALTER FUNCTION public.append_run_rows(text, jsonb, jsonb, jsonb, jsonb) RENAME TO append_run_rows_gone`)
	err := f.appendRows(l, []executor.Event{{RunID: id, Seq: 1, Level: "info", Source: "System", Message: "x"}}, nil)
	f.exec(`ALTER FUNCTION public.append_run_rows_gone(text, jsonb, jsonb, jsonb, jsonb) RENAME TO append_run_rows`)
	requireKind(t, err, executor.ErrNotFound, "append while append_run_rows is missing")
}

// testPermission: the browser's privileges may read and submit runs but
// never write what only the daemon writes.
func testPermission(t *testing.T, f *fixture) {
	anon := f.env.Anon
	if anon == nil {
		t.Skip("the harness has no store with the browser's privileges")
	}
	id := f.seedRun("A", "")
	r, err := anon.GetRun(f.ctx, id)
	require.NoError(t, err, "shared runs are readable")
	assert.Equal(t, id, r.ID)
	sub, err := anon.SubmitRun(f.ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Intent: "from the browser"})
	require.NoError(t, err, "the browser creates runs")
	assert.Equal(t, executor.StatusQueued, sub.Status)

	denied := []struct {
		name string
		call func() error
	}{
		{"append events and steps", func() error {
			_, err := anon.AppendRows(f.ctx, "evil", executor.Rows{
				Events: []executor.Event{{RunID: id, Seq: 1, Level: "info", Source: "System", Message: "forged", Attempt: 1}},
				Steps:  []executor.Step{{RunID: id, Idx: 0, StepID: "x", Title: "X", Status: "queued", Attempt: 1}}})
			return err
		}},
		{"put an artifact", func() error {
			return anon.PutArtifact(f.ctx, executor.Lease{RunID: id, Worker: "evil", Attempt: 1},
				executor.Artifact{RunID: id, Kind: "link", Title: "x", Value: "https://evil.example"})
		}},
		{"write a spec doc", func() error {
			return anon.UpsertSpecDoc(f.ctx, executor.Lease{RunID: id, Worker: "evil", Attempt: 1}, "x/prd", "prd.md", "forged")
		}},
		{"claim", func() error {
			_, err := anon.ClaimRuns(f.ctx, executor.ClaimRequest{Worker: "evil", Lane: "A", Limit: 1, Token: uuid.New()})
			return err
		}},
		{"heartbeat", func() error {
			_, err := anon.Heartbeat(f.ctx, "evil", []executor.Lease{{RunID: id, Worker: "evil", Attempt: 1}}, time.Minute)
			return err
		}},
		{"finish", func() error {
			_, err := anon.FinishRun(f.ctx, executor.Finish{Lease: executor.Lease{RunID: id, Worker: "evil", Attempt: 1}, Status: "success"})
			return err
		}},
		{"reap", func() error {
			_, err := anon.ReapStale(f.ctx)
			return err
		}},
		{"approve", func() error {
			_, err := anon.ApproveRun(f.ctx, id, "evil")
			return err
		}},
	}
	for _, d := range denied {
		requireKind(t, d.call(), executor.ErrPermission, "anon may not "+d.name)
	}
	assert.Equal(t, 0, f.count(`SELECT count(*) FROM public.run_events`))
	assert.Equal(t, 0, f.count(`SELECT count(*) FROM public.artifacts`))
	assert.Equal(t, 0, f.count(`SELECT count(*) FROM public.runs WHERE status <> 'queued' OR approved_at IS NOT NULL`))
}

// testCancelInFlight: a call blocked in the database returns promptly with
// context.Canceled when its context is canceled.
func testCancelInFlight(t *testing.T, f *fixture) {
	id := f.seedRun("A", "")
	tx, err := f.db.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(f.ctx)) }()
	_, err = tx.Exec(f.ctx, `SELECT 1 FROM public.runs WHERE id = $1 FOR UPDATE`, id)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := f.st.CancelRun(ctx, id) // waits for the row lock held above
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for f.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
		require.True(t, time.Now().Before(deadline), "the call never blocked on the row lock")
		time.Sleep(10 * time.Millisecond)
	}
	canceled := time.Now()
	cancel()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.Canceled), "want context.Canceled, got %v", err)
		assert.Less(t, time.Since(canceled), 2*time.Second, "returns promptly")
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not return after its context was canceled")
	}
	require.NoError(t, tx.Rollback(f.ctx))
	require.NoError(t, f.st.Ping(f.ctx), "the store is usable after a canceled call")

	// A context canceled before the call fails it without side effects.
	other := f.seedRun("A", "")
	gone, stop := context.WithCancel(f.ctx)
	stop()
	_, err = f.st.CancelRun(gone, other)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, executor.StatusQueued, f.run(other).Status)
}
