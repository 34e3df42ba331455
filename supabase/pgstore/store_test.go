package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/supabase/migrations"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
	"github.com/opscontrolroom/opsd/supabase/storetest"
)

func newPGStore(t testing.TB) (*pgstore.Store, *pgtest.DB) {
	t.Helper()
	db := pgtest.NewDB(t)
	return openPGStore(t, db.URL), db
}

func openPGStore(t testing.TB, url string) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := pgstore.New(ctx, pgstore.Config{URL: url, MaxConns: 4, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func pgCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pgPtr[T any](v T) *T { return &v }

func pgSubmit(t testing.TB, s *pgstore.Store, lane string, session *string) *executor.Run {
	t.Helper()
	r, err := s.SubmitRun(context.Background(), executor.NewRun{Env: "dev", Kind: "healthcheck", Lane: lane, SessionID: session})
	require.NoError(t, err)
	return r
}

func TestPGStoreSubmitGetList(t *testing.T) {
	t.Parallel()
	s, db := newPGStore(t)
	ctx := pgCtx(t)
	sess := insertSession(t, db.Pool)

	r, err := s.SubmitRun(ctx, executor.NewRun{
		Env: "staging", Kind: "deploy", Intent: "ship it",
		Plan:      json.RawMessage(`{"id":"p1","kind":"deploy","title":"Ship"}`),
		Input:     json.RawMessage(`{"target":"web"}`),
		SessionID: &sess, Lane: "B", Priority: pgPtr(5), DryRun: true, TimeoutSeconds: pgPtr(90),
	})
	require.NoError(t, err)
	assert.Equal(t, executor.StatusQueued, r.Status)
	assert.Equal(t, "B", r.Lane)
	assert.Equal(t, 5, r.Priority)
	assert.True(t, r.DryRun)
	assert.Equal(t, 90, *r.TimeoutSeconds)
	assert.Equal(t, sess, *r.SessionID)
	assert.JSONEq(t, `{"target":"web"}`, string(r.Input))
	assert.JSONEq(t, `{"id":"p1","kind":"deploy","title":"Ship"}`, string(r.Plan))
	assert.Nil(t, r.Output)
	assert.Nil(t, r.ClaimedBy)
	assert.Equal(t, 0, r.Attempt)
	assert.Equal(t, 1, r.MaxAttempts)

	// Defaults, as the frontend gets them.
	d, err := s.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck"})
	require.NoError(t, err)
	assert.Equal(t, "A", d.Lane)
	assert.Equal(t, 100, d.Priority)
	assert.JSONEq(t, `{}`, string(d.Input))
	assert.Nil(t, d.Plan)

	got, err := s.GetRun(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, r, got)

	all, err := s.ListRuns(ctx, executor.RunFilter{})
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, d.ID, all[0].ID, "newest first")

	one, err := s.ListRuns(ctx, executor.RunFilter{Limit: 1})
	require.NoError(t, err)
	require.Len(t, one, 1)

	_, err = s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 1})
	require.NoError(t, err)
	running, err := s.ListRuns(ctx, executor.RunFilter{Statuses: []string{executor.StatusRunning}})
	require.NoError(t, err)
	require.Len(t, running, 1)
	assert.Equal(t, d.ID, running[0].ID)

	counts, err := s.LaneCounts(ctx)
	require.NoError(t, err)
	assert.Equal(t, []executor.LaneCount{{Lane: "A", Running: 1}, {Lane: "B", Queued: 1}}, counts)

	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, migrations.SchemaVersion(), v)
	require.NoError(t, s.Ping(ctx))

	_, err = s.GetRun(ctx, "00000000-0000-0000-0000-000000000001")
	require.ErrorIs(t, err, executor.ErrNotFound)
	assert.Contains(t, err.Error(), "00000000-0000-0000-0000-000000000001")
}

func TestPGStoreRunLifecycle(t *testing.T) {
	t.Parallel()
	s, db := newPGStore(t)
	ctx := pgCtx(t)
	r := pgSubmit(t, s, "A", nil)

	token := "6f1c5a6e-2b0e-4c39-9d59-4b0f0d7a9a11"
	req := executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 5, Token: token}
	claimed, err := s.ClaimRuns(ctx, req)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	c := claimed[0]
	assert.Equal(t, r.ID, c.ID)
	assert.Equal(t, executor.StatusRunning, c.Status)
	assert.Equal(t, "w1", *c.ClaimedBy)
	assert.Equal(t, 1, c.Attempt)
	assert.Equal(t, 1, c.NextSeq)
	assert.NotNil(t, c.HeartbeatAt)

	// A replay of the same claim (lost response) returns the same run.
	again, err := s.ClaimRuns(ctx, req)
	require.NoError(t, err)
	require.Len(t, again, 1)
	assert.Equal(t, c.ID, again[0].ID)
	none, err := s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 5})
	require.NoError(t, err)
	assert.Empty(t, none)

	lease := executor.Lease{RunID: c.ID, Worker: "w1", Attempt: c.Attempt}
	ok, err := s.SetPhase(ctx, lease, executor.PhaseValidate)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = s.SetPhase(ctx, executor.Lease{RunID: c.ID, Worker: "w2", Attempt: 1}, executor.PhasePreflight)
	require.NoError(t, err)
	assert.False(t, ok, "another worker's lease is fenced off")

	// Events: one batch, retried, then the next one.
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	batch := []executor.Event{
		{RunID: c.ID, Seq: 1, TS: t0, Level: executor.LevelInfo, Source: "System", Message: "validating", Phase: executor.PhaseValidate},
		{RunID: c.ID, Seq: 2, Level: executor.LevelDebug, Source: "Vercel", Message: "probe", Data: json.RawMessage(`{"status":200}`)},
		{RunID: c.ID, Seq: 3, Level: executor.LevelWarn, Source: "GitHub", Message: "slow", Data: json.RawMessage(`null`)},
	}
	require.NoError(t, pgAppend(ctx, s, lease, batch, nil))
	require.NoError(t, pgAppend(ctx, s, lease, batch, nil), "a retried batch is a no-op")
	require.NoError(t, pgAppend(ctx, s, lease, []executor.Event{
		{RunID: c.ID, Seq: 3, Level: executor.LevelError, Source: "System", Message: "duplicate seq, ignored"},
		{RunID: c.ID, Seq: 4, Level: executor.LevelSuccess, Source: "System", Message: "done"},
	}, nil))
	evs, err := s.ListEvents(ctx, c.ID, 0, 0)
	require.NoError(t, err)
	require.Len(t, evs, 4)
	for i, e := range evs {
		assert.Equal(t, i+1, e.Seq)
	}
	assert.True(t, evs[0].TS.Equal(t0))
	assert.Equal(t, executor.PhaseValidate, evs[0].Phase)
	assert.WithinDuration(t, time.Now(), evs[1].TS, time.Minute, "a zero ts is now()")
	assert.JSONEq(t, `{"status":200}`, string(evs[1].Data))
	assert.Nil(t, evs[2].Data)
	assert.Equal(t, "slow", evs[2].Message)
	page, err := s.ListEvents(ctx, c.ID, 1, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, []int{2, 3}, []int{page[0].Seq, page[1].Seq})

	// Heartbeat: owned, then approved, then canceled; unknown runs are lost.
	other := "00000000-0000-0000-0000-0000000000aa"
	states, err := s.Heartbeat(ctx, "w1", []executor.Lease{lease, {RunID: other, Worker: "w1", Attempt: 1}}, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, []executor.LeaseState{
		{RunID: c.ID, State: executor.LeaseOwned},
		{RunID: other, State: executor.LeaseLost},
	}, states)
	ok, err = s.ApproveRun(ctx, c.ID, "alice")
	require.NoError(t, err)
	assert.True(t, ok)
	got, err := s.GetRun(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, "operator:alice", *got.ApprovedBy)
	ok, err = s.ApproveRun(ctx, c.ID, "bob")
	require.NoError(t, err)
	assert.False(t, ok, "approved once")
	states, err = s.Heartbeat(ctx, "w1", []executor.Lease{lease}, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, []executor.LeaseState{{RunID: c.ID, State: executor.LeaseOwned, Approved: true, ApprovedBy: "operator:alice"}}, states)

	ok, err = s.CancelRun(ctx, c.ID)
	require.NoError(t, err)
	assert.True(t, ok)
	states, err = s.Heartbeat(ctx, "w1", []executor.Lease{lease}, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, executor.LeaseCanceled, states[0].State)

	ok, err = s.FinishRun(ctx, executor.Finish{Lease: lease, Status: executor.StatusSuccess, Output: json.RawMessage(`{"url":"x"}`)})
	require.NoError(t, err)
	assert.True(t, ok)
	got, err = s.GetRun(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, executor.StatusCanceled, got.Status, "a cancel wins over the finish")
	assert.NotNil(t, got.FinishedAt)
	assert.JSONEq(t, `{"url":"x"}`, string(got.Output))
	ok, err = s.FinishRun(ctx, executor.Finish{Lease: lease, Status: executor.StatusError, ErrorMessage: "late"})
	require.NoError(t, err)
	assert.False(t, ok, "finished once")
	ok, err = s.CancelRun(ctx, c.ID)
	require.NoError(t, err)
	assert.False(t, ok, "terminal runs are not canceled again")

	// An error finish keeps its message.
	r2 := pgSubmit(t, s, "A", nil)
	claimed, err = s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.Equal(t, r2.ID, claimed[0].ID)
	ok, err = s.FinishRun(ctx, executor.Finish{Lease: executor.Lease{RunID: r2.ID, Worker: "w1", Attempt: 1},
		Status: executor.StatusError, ErrorMessage: "deploy failed"})
	require.NoError(t, err)
	assert.True(t, ok)
	got, err = s.GetRun(ctx, r2.ID)
	require.NoError(t, err)
	assert.Equal(t, executor.StatusError, got.Status)
	assert.Equal(t, "deploy failed", *got.ErrorMessage)
	status, finished := runStatus(t, db.Pool, r2.ID)
	assert.Equal(t, executor.StatusError, status)
	assert.True(t, finished)
}

// pgClaimed submits a run and claims it for w1.
func pgClaimed(tb testing.TB, s *pgstore.Store) (string, executor.Lease) {
	tb.Helper()
	r := pgSubmit(tb, s, "bench", nil)
	claimed, err := s.ClaimRuns(context.Background(), executor.ClaimRequest{Worker: "w1", Lane: "bench", Limit: 1, LeaseFor: time.Hour})
	require.NoError(tb, err)
	require.Len(tb, claimed, 1)
	return r.ID, executor.Lease{RunID: r.ID, Worker: "w1", Attempt: claimed[0].Attempt}
}

// pgAppend stores events and steps under lease (every row gets its attempt).
func pgAppend(ctx context.Context, s *pgstore.Store, lease executor.Lease, events []executor.Event, steps []executor.Step) error {
	for i := range events {
		events[i].Attempt = lease.Attempt
	}
	for i := range steps {
		steps[i].Attempt = lease.Attempt
	}
	refused, err := s.AppendRows(ctx, lease.Worker, executor.Rows{Events: events, Steps: steps})
	if err == nil && len(refused) > 0 {
		return fmt.Errorf("refused leases: %v", refused)
	}
	return err
}

func TestPGStoreReleaseAndReap(t *testing.T) {
	t.Parallel()
	s, db := newPGStore(t)
	ctx := pgCtx(t)
	r := pgSubmit(t, s, "C", nil)
	claimed, err := s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "C", Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	lease := executor.Lease{RunID: r.ID, Worker: "w1", Attempt: 1}

	ok, err := s.ReleaseRun(ctx, lease, "shutting down")
	require.NoError(t, err)
	assert.True(t, ok)
	got, err := s.GetRun(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, executor.StatusQueued, got.Status)
	assert.Equal(t, 1, got.Attempt, "the fencing token never goes back")
	assert.Equal(t, 0, got.AttemptsUsed, "a released attempt does not count against max_attempts")
	ok, err = s.ReleaseRun(ctx, lease, "")
	require.NoError(t, err)
	assert.False(t, ok)

	claimed, err = s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w2", Lane: "C", Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	assert.Equal(t, 2, claimed[0].NextSeq, "the release wrote event 1")
	assert.Equal(t, 2, claimed[0].Attempt, "a new claim is a new attempt")

	// Nothing is stale yet: the lease lasts what the claimer asked (30 s).
	reaped, err := s.ReapStale(ctx)
	require.NoError(t, err)
	assert.Empty(t, reaped)
	_, err = db.Pool.Exec(ctx, `UPDATE runs SET lease_expires_at = now() - interval '10 milliseconds', max_attempts = 2 WHERE id = $1`, r.ID)
	require.NoError(t, err)
	reaped, err = s.ReapStale(ctx)
	require.NoError(t, err)
	assert.Equal(t, []executor.ReapResult{{RunID: r.ID, Action: "requeued", Phase: "validate", Worker: "w2"}}, reaped)
	reaped, err = s.ReapStale(ctx)
	require.NoError(t, err)
	assert.Empty(t, reaped)
}

func TestPGStoreArtifactsStepsTemplatesSpecDocs(t *testing.T) {
	t.Parallel()
	s, db := newPGStore(t)
	ctx := pgCtx(t)
	r := pgSubmit(t, s, "A", nil)
	claimed, err := s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	lease := executor.Lease{RunID: r.ID, Worker: "w1", Attempt: 1}

	require.NoError(t, s.PutArtifact(ctx, lease, executor.Artifact{RunID: r.ID, Kind: executor.ArtifactLink, Title: "Deployment", Value: "https://x.vercel.app"}))
	require.NoError(t, s.PutArtifact(ctx, lease, executor.Artifact{RunID: r.ID, Kind: executor.ArtifactFile, Title: "report.md", Value: "# ok"}))
	arts, err := s.ListArtifacts(ctx, r.ID)
	require.NoError(t, err)
	require.Len(t, arts, 2)
	assert.Equal(t, "Deployment", arts[0].Title)
	assert.Equal(t, executor.ArtifactFile, arts[1].Kind)
	assert.NotZero(t, arts[1].ID)
	assert.False(t, arts[1].CreatedAt.IsZero())

	now := time.Now().UTC().Truncate(time.Microsecond)
	require.NoError(t, pgAppend(ctx, s, lease, nil, []executor.Step{
		{RunID: r.ID, Idx: 0, StepID: "build", Title: "Build", Kind: "tool", Tool: pgPtr("vercel"), Action: pgPtr("deploy"), Args: json.RawMessage(`{"project":"web"}`)},
		{RunID: r.ID, Idx: 1, StepID: "check", Title: "Check"},
	}))
	require.NoError(t, pgAppend(ctx, s, lease, nil, []executor.Step{
		{RunID: r.ID, Idx: 0, StepID: "build", Title: "Build", Kind: "tool", Tool: pgPtr("vercel"), Action: pgPtr("deploy"),
			Args: json.RawMessage(`{"project":"web"}`), Status: "failed", StartedAt: &now, FinishedAt: &now, Error: pgPtr("boom")},
	}))
	type stepRow struct {
		Idx                  int
		StepID, Kind, Status string
		Args                 string
		Error                *string
		Started              *time.Time
	}
	rows, err := db.Pool.Query(ctx, `SELECT idx, step_id, kind, status::text, args::text, error, started_at FROM run_steps WHERE run_id = $1 ORDER BY idx`, r.ID)
	require.NoError(t, err)
	steps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stepRow])
	require.NoError(t, err)
	require.Len(t, steps, 2)
	assert.Equal(t, "failed", steps[0].Status)
	assert.Equal(t, "boom", *steps[0].Error)
	assert.True(t, steps[0].Started.Equal(now))
	assert.JSONEq(t, `{"project":"web"}`, steps[0].Args)
	assert.Equal(t, "system", steps[1].Kind)
	assert.Equal(t, "queued", steps[1].Status)
	assert.Equal(t, "{}", steps[1].Args)

	var tplID string
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO run_templates (slug, title, template_yaml) VALUES ('vercel-deploy', 'Deploy', 'version: 1') RETURNING id`).Scan(&tplID))
	bySlug, err := s.GetTemplate(ctx, "vercel-deploy")
	require.NoError(t, err)
	assert.Equal(t, executor.Template{ID: tplID, Slug: "vercel-deploy", Title: "Deploy", TemplateYAML: "version: 1"}, *bySlug)
	byID, err := s.GetTemplate(ctx, tplID)
	require.NoError(t, err)
	assert.Equal(t, bySlug, byID)
	_, err = s.GetTemplate(ctx, "no-such-template")
	require.ErrorIs(t, err, executor.ErrNotFound)
	assert.Contains(t, err.Error(), "no-such-template")

	require.NoError(t, s.UpsertSpecDoc(ctx, lease, "ops-control-room/prd", "prd.md", "v1"))
	require.NoError(t, s.UpsertSpecDoc(ctx, lease, "ops-control-room/prd", "prd.md", "v2"))
	var n int
	var content string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) OVER (), content FROM spec_docs WHERE slug = 'ops-control-room/prd'`).Scan(&n, &content))
	assert.Equal(t, 1, n)
	assert.Equal(t, "v2", content)
}

func TestPGStoreErrorMapping(t *testing.T) {
	t.Parallel()
	s, db := newPGStore(t)
	ctx := pgCtx(t)
	r := pgSubmit(t, s, "A", nil)
	_, err := s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 1})
	require.NoError(t, err)
	lease := executor.Lease{RunID: r.ID, Worker: "w1", Attempt: 1}
	missing := "00000000-0000-0000-0000-000000000042"

	cases := []struct {
		name string
		call func() error
		kind error
		code string
	}{
		{"bad uuid", func() error { _, err := s.GetRun(ctx, "not-a-uuid"); return err }, executor.ErrInvalidInput, "22P02"},
		{"bad uuid in a batch", func() error {
			return pgAppend(ctx, s, lease, []executor.Event{{RunID: "nope", Seq: 1, Level: "info", Source: "System", Message: "m"}}, nil)
		}, executor.ErrInvalidInput, "22P02"},
		{"bad uuid in heartbeat", func() error {
			_, err := s.Heartbeat(ctx, "w1", []executor.Lease{{RunID: "x"}}, time.Minute)
			return err
		}, executor.ErrInvalidInput, ""},
		{"unknown template", func() error { _, err := s.GetTemplate(ctx, "ghost"); return err }, executor.ErrNotFound, ""},
		{"bad status in finish", func() error {
			_, err := s.FinishRun(ctx, executor.Finish{Lease: lease, Status: "succeeded"})
			return err
		}, executor.ErrInvalidInput, "22023"},
		{"bad phase", func() error { _, err := s.SetPhase(ctx, lease, "deploying"); return err }, executor.ErrInvalidInput, "22023"},
		{"empty lane", func() error { _, err := s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Limit: 1}); return err }, executor.ErrInvalidInput, "22023"},
		{"bad claim token", func() error {
			_, err := s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 1, Token: "t"})
			return err
		}, executor.ErrInvalidInput, "22P02"},
		{"bad level", func() error {
			return pgAppend(ctx, s, lease, []executor.Event{{RunID: r.ID, Seq: 1, Level: "fatal", Source: "System", Message: "m"}}, nil)
		}, executor.ErrInvalidInput, "23514"},
		{"event without seq", func() error {
			return pgAppend(ctx, s, lease, []executor.Event{{RunID: r.ID, Level: "info", Source: "System", Message: "m"}}, nil)
		}, executor.ErrInvalidInput, ""},
		{"bad artifact kind", func() error {
			return s.PutArtifact(ctx, lease, executor.Artifact{RunID: r.ID, Kind: "image", Title: "t", Value: "v"})
		}, executor.ErrInvalidInput, "23514"},
		{"bad step status", func() error {
			return pgAppend(ctx, s, lease, nil, []executor.Step{{RunID: r.ID, Idx: 0, StepID: "s", Title: "S", Status: "success"}})
		}, executor.ErrInvalidInput, "22P02"},
		{"same step twice in a batch", func() error {
			return pgAppend(ctx, s, lease, nil, []executor.Step{{RunID: r.ID, Idx: 0, StepID: "s", Title: "S"}, {RunID: r.ID, Idx: 0, StepID: "s", Title: "S"}})
		}, executor.ErrInvalidInput, "21000"},
		{"bad env", func() error {
			_, err := s.SubmitRun(ctx, executor.NewRun{Env: "production", Kind: "deploy"})
			return err
		}, executor.ErrInvalidInput, "23514"},
		{"unknown session", func() error {
			_, err := s.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "deploy", SessionID: &missing})
			return err
		}, executor.ErrConflict, "23503"},
		{"bad plan json", func() error {
			_, err := s.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "deploy", Plan: json.RawMessage(`{`)})
			return err
		}, executor.ErrInvalidInput, "22P02"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.ErrorIs(t, err, tc.kind)
			var se *executor.StoreError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.code, se.Code)
			assert.False(t, executor.Retryable(err))
		})
	}

	// Rows of a run nobody holds are refused, not stored.
	refused, err := s.AppendRows(ctx, "w1", executor.Rows{Events: []executor.Event{
		{RunID: missing, Seq: 1, Level: "info", Source: "System", Message: "m", Attempt: 1}}})
	require.NoError(t, err)
	assert.Equal(t, []executor.Lease{{RunID: missing, Worker: "w1", Attempt: 1}}, refused)

	// A role without the grants (the browser's anon) is refused claim_run.
	anon := openPGStore(t, pgURLWithParam(db.URL, "role", "anon"))
	_, err = anon.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 1})
	require.ErrorIs(t, err, executor.ErrPermission)
}

func pgURLWithParam(url, k, v string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + k + "=" + v
}

// pgLockedClaim starts a ClaimRuns that waits on a row lock held by another
// transaction and returns once the store's backend is seen waiting; the
// returned function releases the lock.
func pgLockedClaim(t *testing.T, ctx context.Context, s *pgstore.Store, db *pgtest.DB) (runID string, done <-chan error, unlock func()) {
	t.Helper()
	sess := insertSession(t, db.Pool)
	r := pgSubmit(t, s, "D", &sess)
	tx, err := db.Pool.Begin(context.Background())
	require.NoError(t, err)
	_, err = tx.Exec(context.Background(), `SELECT 1 FROM runs WHERE id = $1 FOR UPDATE`, r.ID)
	require.NoError(t, err)
	unlock = func() { _ = tx.Rollback(context.Background()) }
	t.Cleanup(unlock)

	errc := make(chan error, 1)
	go func() {
		_, err := s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "D", Limit: 1})
		errc <- err
	}()
	require.Eventually(t, func() bool {
		var waiting bool
		err := db.Pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'opsd' AND wait_event_type = 'Lock')`).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 5*time.Millisecond, "claim_run never waited on the row lock")
	return r.ID, errc, unlock
}

func TestPGStoreCancelInFlight(t *testing.T) {
	t.Parallel()
	s, db := newPGStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runID, errc, unlock := pgLockedClaim(t, ctx, s, db)

	canceledAt := time.Now()
	cancel()
	select {
	case err := <-errc:
		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
		assert.False(t, executor.Retryable(err))
		assert.Less(t, time.Since(canceledAt), time.Second, "a cancelled call returns promptly")
	case <-time.After(5 * time.Second):
		t.Fatal("ClaimRuns did not return after its context was cancelled")
	}

	// The server aborted the statement: once the lock is gone the run is still queued.
	unlock()
	status, _ := runStatus(t, db.Pool, runID)
	assert.Equal(t, executor.StatusQueued, status)
	require.NoError(t, s.Ping(pgCtx(t)), "the store still works")

	// A context cancelled before the call fails it without side effects.
	_, err := s.CancelRun(ctx, runID)
	require.ErrorIs(t, err, context.Canceled)
	status, _ = runStatus(t, db.Pool, runID)
	assert.Equal(t, executor.StatusQueued, status)
}

func TestPGStoreConnectionLossIsTransient(t *testing.T) {
	t.Parallel()
	s, db := newPGStore(t)
	_, errc, _ := pgLockedClaim(t, pgCtx(t), s, db)

	_, err := db.Pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'opsd' AND wait_event_type = 'Lock'`)
	require.NoError(t, err)
	select {
	case err := <-errc:
		require.ErrorIs(t, err, executor.ErrTransient)
		assert.True(t, executor.Retryable(err))
	case <-time.After(5 * time.Second):
		t.Fatal("ClaimRuns did not return after its backend was terminated")
	}
	require.NoError(t, s.Ping(pgCtx(t)), "the pool replaces the lost connection")
}

// pgNextWake returns the next wakeup, failing the test after a deadline.
func pgNextWake(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case lane, ok := <-ch:
		require.True(t, ok, "wakeup channel closed")
		return lane
	case <-time.After(10 * time.Second):
		t.Fatal("no wakeup")
		return ""
	}
}

// pgWakeFor reads wakeups until lane arrives.
func pgWakeFor(t *testing.T, ch <-chan string, lane string) {
	t.Helper()
	for {
		if got := pgNextWake(t, ch); got == lane {
			return
		}
	}
}

func TestPGStoreWakeups(t *testing.T) {
	t.Parallel()
	s, _ := newPGStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.Wakeups(ctx)
	require.NotNil(t, ch)
	assert.Equal(t, "", pgNextWake(t, ch), "a connect wakes every lane")

	pgSubmit(t, s, "C", nil)
	assert.Equal(t, "C", pgNextWake(t, ch))

	cancel()
	for range ch { //nolint:revive // drain until closed
	}
}

func TestPGStoreWakeupsReconnect(t *testing.T) {
	t.Parallel()
	s, db := newPGStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := s.Wakeups(ctx)
	require.Equal(t, "", pgNextWake(t, ch))

	var killed int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'opsd-listen'`).Scan(&killed))
	require.Equal(t, 1, killed, "one listener connection")
	assert.Equal(t, "", pgNextWake(t, ch), "the reconnect wakes every lane")

	pgSubmit(t, s, "B", nil)
	pgWakeFor(t, ch, "B")
}

func TestPGStoreCloseStopsWakeups(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	s := openPGStore(t, db.URL)
	ch := s.Wakeups(context.Background())
	require.Equal(t, "", pgNextWake(t, ch))
	s.Close()
	_, ok := <-ch
	assert.False(t, ok, "Close closes the channel after the listener stopped")
	closed := s.Wakeups(context.Background())
	_, ok = <-closed
	assert.False(t, ok, "a closed store's wakeups are closed at once")
}

// BenchmarkAppendEvents compares ways to write 1,000-event batches
// idempotently: the store's fenced append_run_rows (one call, rows as JSON,
// INSERT ... ON CONFLICT DO NOTHING) against COPY into a temporary table
// followed by an INSERT ... ON CONFLICT (COPY itself cannot skip conflicts),
// with plain COPY (neither idempotent nor fenced) as the ceiling. Run:
//
//	go test ./supabase/pgstore/ -run '^$' -bench AppendEvents -benchtime 200x
func BenchmarkAppendEvents(b *testing.B) {
	const batch = 1000
	mkBatch := func(runID string, first int) []executor.Event {
		evs := make([]executor.Event, batch)
		now := time.Now()
		for i := range evs {
			evs[i] = executor.Event{RunID: runID, Seq: first + i, TS: now, Level: executor.LevelInfo, Source: "Kubernetes",
				Message: fmt.Sprintf("deployment web: replica %d of %d ready (image registry.example.com/web:sha-1f2e3d)", i, batch),
				Phase:   executor.PhaseAction}
			if i%10 == 0 {
				evs[i].Data = json.RawMessage(`{"replicas":3,"ready":2,"namespace":"prod"}`)
			}
		}
		return evs
	}
	report := func(b *testing.B, rows int) {
		b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	}

	b.Run("unnest_on_conflict", func(b *testing.B) {
		s, _ := newPGStore(b)
		ctx := context.Background()
		runID, lease := pgClaimed(b, s)
		seq, rows := 1, 0
		for b.Loop() {
			if err := pgAppend(ctx, s, lease, mkBatch(runID, seq), nil); err != nil {
				b.Fatal(err)
			}
			seq += batch
			rows += batch
		}
		report(b, rows)
	})

	b.Run("unnest_on_conflict_retry", func(b *testing.B) {
		s, _ := newPGStore(b)
		ctx := context.Background()
		runID, lease := pgClaimed(b, s)
		evs := mkBatch(runID, 1)
		require.NoError(b, pgAppend(ctx, s, lease, evs, nil))
		rows := 0
		for b.Loop() { // every row conflicts: the cost of a retried batch
			if err := pgAppend(ctx, s, lease, evs, nil); err != nil {
				b.Fatal(err)
			}
			rows += batch
		}
		report(b, rows)
	})

	copyRows := func(evs []executor.Event) pgx.CopyFromSource {
		return pgx.CopyFromSlice(len(evs), func(i int) ([]any, error) {
			e := evs[i]
			var data []byte
			if e.Data != nil {
				data = e.Data
			}
			var ts any
			if !e.TS.IsZero() {
				ts = e.TS
			}
			return []any{e.RunID, int32(e.Seq), ts, e.Level, e.Source, e.Message, data, e.Phase}, nil
		})
	}
	cols := []string{"run_id", "seq", "ts", "level", "source", "message", "data", "phase"}

	b.Run("copy_temp_on_conflict", func(b *testing.B) {
		s, db := newPGStore(b)
		ctx := context.Background()
		runID, _ := pgClaimed(b, s)
		conn, err := pgx.Connect(ctx, db.URL)
		require.NoError(b, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE TEMP TABLE event_stage (run_id uuid, seq int, ts timestamptz, level text,
			source text, message text, data jsonb, phase text) ON COMMIT DELETE ROWS`)
		require.NoError(b, err)
		seq, rows := 1, 0
		for b.Loop() {
			tx, err := conn.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"event_stage"}, cols, copyRows(mkBatch(runID, seq))); err != nil {
				b.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO run_events (run_id, seq, ts, level, source, message, data, phase)
				SELECT run_id, seq, coalesce(ts, now()), level, source, message, data, nullif(phase, '') FROM event_stage
				ON CONFLICT (run_id, seq) DO NOTHING`); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				b.Fatal(err)
			}
			seq += batch
			rows += batch
		}
		report(b, rows)
	})

	b.Run("copy_plain_not_idempotent", func(b *testing.B) {
		s, db := newPGStore(b)
		ctx := context.Background()
		runID, _ := pgClaimed(b, s)
		conn, err := pgx.Connect(ctx, db.URL)
		require.NoError(b, err)
		defer conn.Close(ctx)
		seq, rows := 1, 0
		for b.Loop() {
			if _, err := conn.CopyFrom(ctx, pgx.Identifier{"run_events"}, cols, copyRows(mkBatch(runID, seq))); err != nil {
				b.Fatal(err)
			}
			seq += batch
			rows += batch
		}
		report(b, rows)
	})
}

// TestPGStoreContract runs the contract suites (the daemon's and the
// operator's) against Store, with a second store connected as role anon for
// the browser's privileges.
func TestPGStoreContract(t *testing.T) {
	h := storetest.HarnessFunc(func(t *testing.T) *storetest.Env {
		db := pgtest.NewDB(t)
		return &storetest.Env{
			Store: openPGStore(t, db.URL),
			DB:    db.Pool,
			Anon:  openPGStore(t, pgURLWithParam(db.URL, "role", "anon")),
		}
	})
	storetest.RunDaemon(t, h)
	storetest.RunOperator(t, h)
}

// TestPGStoreExecModes runs the array-heavy calls in the query modes a
// transaction pooler needs (no named prepared statements).
func TestPGStoreExecModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"cache_describe", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			db := pgtest.NewDB(t)
			s := openPGStore(t, pgURLWithParam(db.URL, "default_query_exec_mode", mode))
			ctx := pgCtx(t)
			r, err := s.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "deploy", Plan: json.RawMessage(`{"id":"p"}`), Priority: pgPtr(1)})
			require.NoError(t, err)
			claimed, err := s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 1, Token: "6f1c5a6e-2b0e-4c39-9d59-4b0f0d7a9a12"})
			require.NoError(t, err)
			require.Len(t, claimed, 1)
			lease := executor.Lease{RunID: r.ID, Worker: "w1", Attempt: 1}
			states, err := s.Heartbeat(ctx, "w1", []executor.Lease{lease}, time.Minute)
			require.NoError(t, err)
			assert.Equal(t, executor.LeaseOwned, states[0].State)
			now := time.Now()
			require.NoError(t, pgAppend(ctx, s, lease, []executor.Event{
				{RunID: r.ID, Seq: 1, TS: time.Now(), Level: "info", Source: "System", Message: "a", Data: json.RawMessage(`{"k":[1]}`), Phase: "action"},
				{RunID: r.ID, Seq: 2, Level: "info", Source: "System", Message: "b"},
			}, []executor.Step{{RunID: r.ID, Idx: 0, StepID: "s", Title: "S", Tool: pgPtr("vercel"), StartedAt: &now}}))
			evs, err := s.ListEvents(ctx, r.ID, 0, 0)
			require.NoError(t, err)
			require.Len(t, evs, 2)
			assert.JSONEq(t, `{"k":[1]}`, string(evs[0].Data))
			ok, err := s.FinishRun(ctx, executor.Finish{Lease: lease, Status: executor.StatusSuccess, Output: json.RawMessage(`{"ok":true}`)})
			require.NoError(t, err)
			assert.True(t, ok)
			runs, err := s.ListRuns(ctx, executor.RunFilter{Statuses: []string{executor.StatusSuccess}, Limit: 5})
			require.NoError(t, err)
			require.Len(t, runs, 1)
		})
	}
}
