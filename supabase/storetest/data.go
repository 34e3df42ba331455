package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/uuid"
)

func testSubmitGetList(t *testing.T, f *fixture) {
	sess := f.seedSession()
	plan := json.RawMessage(`{"id":"p1","kind":"deploy","title":"Deploy web","summary":"ship","inputs":[{"key":"target","label":"Target","type":"text","value":"web"}],"risks":[],"integrations":["Vercel"]}`)
	r, err := f.st.SubmitRun(f.ctx, executor.NewRun{
		Env: "staging", Kind: "deploy", Plan: plan, Intent: "ship it", Input: json.RawMessage(`{"target":"web"}`),
		SessionID: &sess, Lane: "B", Priority: intp(5), DryRun: true, TimeoutSeconds: intp(600),
	})
	require.NoError(t, err)
	require.NotEmpty(t, r.ID)
	assert.Equal(t, executor.StatusQueued, r.Status)
	assert.Equal(t, "staging", r.Env)
	assert.Equal(t, "deploy", r.Kind)
	assert.Equal(t, "ship it", r.Intent)
	assert.Equal(t, "B", r.Lane)
	assert.Equal(t, 5, r.Priority)
	assert.True(t, r.DryRun)
	assert.Equal(t, intp(600), r.TimeoutSeconds)
	assert.Equal(t, &sess, r.SessionID)
	assert.JSONEq(t, string(plan), string(r.Plan))
	assert.JSONEq(t, `{"target":"web"}`, string(r.Input))
	assert.Zero(t, r.Attempt)
	assert.Equal(t, 1, r.MaxAttempts)
	assert.Nil(t, r.ClaimedBy)
	assert.Nil(t, r.StartedAt)
	assert.False(t, r.CreatedAt.IsZero())
	assert.False(t, r.Terminal())

	got := f.run(r.ID)
	assert.Equal(t, r.ID, got.ID)
	assert.Equal(t, r.Lane, got.Lane)
	assert.JSONEq(t, string(plan), string(got.Plan))
	assert.True(t, r.CreatedAt.Equal(got.CreatedAt), "created_at round trip: %v vs %v", r.CreatedAt, got.CreatedAt)

	// Defaults as the frontend relies on them.
	d, err := f.st.SubmitRun(f.ctx, executor.NewRun{Env: "dev", Kind: "healthcheck"})
	require.NoError(t, err)
	assert.Equal(t, "A", d.Lane)
	assert.Equal(t, 100, d.Priority)
	assert.JSONEq(t, `{}`, string(d.Input))
	assert.Empty(t, d.Plan)
	assert.Nil(t, d.SessionID)
	assert.False(t, d.DryRun)

	// Listing: newest first, filtered by status, limited.
	older := f.seedRun("A", "")
	failed := f.seedRun("C", "")
	f.exec(`UPDATE public.runs SET status = 'error', finished_at = now() WHERE id = $1`, failed)
	runs, err := f.st.ListRuns(f.ctx, executor.RunFilter{Statuses: []string{executor.StatusQueued}, Limit: 2})
	require.NoError(t, err)
	require.Len(t, runs, 2)
	assert.Equal(t, d.ID, runs[0].ID, "newest first")
	assert.Equal(t, r.ID, runs[1].ID)
	runs, err = f.st.ListRuns(f.ctx, executor.RunFilter{Statuses: []string{executor.StatusError, executor.StatusSuccess}})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, failed, runs[0].ID)
	runs, err = f.st.ListRuns(f.ctx, executor.RunFilter{})
	require.NoError(t, err)
	assert.Len(t, runs, 4)
	assert.Equal(t, older, runs[len(runs)-1].ID, "the oldest comes last")

	counts, err := f.st.LaneCounts(f.ctx)
	require.NoError(t, err)
	byLane := map[string]executor.LaneCount{}
	for _, c := range counts {
		byLane[c.Lane] = c
	}
	assert.Equal(t, executor.LaneCount{Lane: "A", Queued: 2}, byLane["A"])
	assert.Equal(t, executor.LaneCount{Lane: "B", Queued: 1}, byLane["B"])
	_, hasC := byLane["C"]
	assert.False(t, hasC, "a lane with only finished runs is not counted")
	f.claim("w1", "A", 1, 1)
	counts, err = f.st.LaneCounts(f.ctx)
	require.NoError(t, err)
	assert.Contains(t, counts, executor.LaneCount{Lane: "A", Queued: 1, Running: 1})
}

func testTemplates(t *testing.T, f *fixture) {
	var id string
	require.NoError(t, f.db.QueryRow(f.ctx, `
		INSERT INTO public.run_templates (slug, title, description, template_yaml)
		VALUES ('deploy-web', 'Deploy web', 'Deploys the web app', $1) RETURNING id::text`,
		"version: 1\nsteps: []\n").Scan(&id))
	want := executor.Template{ID: id, Slug: "deploy-web", Title: "Deploy web", Description: "Deploys the web app",
		TemplateYAML: "version: 1\nsteps: []\n"}
	for _, key := range []string{id, "deploy-web"} {
		got, err := f.st.GetTemplate(f.ctx, key)
		require.NoError(t, err, key)
		assert.Equal(t, want, *got, key)
	}
	_, err := f.st.GetTemplate(f.ctx, "no-such-template")
	requireKind(t, err, executor.ErrNotFound, "missing slug")
	_, err = f.st.GetTemplate(f.ctx, uuid.New())
	requireKind(t, err, executor.ErrNotFound, "missing id")
}

func testSpecDocs(t *testing.T, f *fixture) {
	_, l := f.seedClaimed()
	require.NoError(t, f.st.UpsertSpecDoc(f.ctx, l, "ops-control-room/prd", "prd.md", "# v1"))
	require.NoError(t, f.st.UpsertSpecDoc(f.ctx, l, "ops-control-room/prd", "PRD.md", "# v2"))
	require.NoError(t, f.st.UpsertSpecDoc(f.ctx, l, "ops-control-room/tasks", "tasks.md", "- [ ] one"))
	assert.Equal(t, 2, f.count(`SELECT count(*) FROM public.spec_docs`))
	assert.Equal(t, "PRD.md|# v2", deref(f.text(`SELECT title || '|' || content FROM public.spec_docs WHERE slug = 'ops-control-room/prd'`)))

	stale := l
	stale.Attempt++
	err := f.st.UpsertSpecDoc(f.ctx, stale, "ops-control-room/prd", "prd.md", "# stale")
	requireKind(t, err, executor.ErrLeaseLost, "a spec doc written under an attempt that does not hold the run")
	assert.Equal(t, "PRD.md|# v2", deref(f.text(`SELECT title || '|' || content FROM public.spec_docs WHERE slug = 'ops-control-room/prd'`)))
}

func testEventsAndArtifacts(t *testing.T, f *fixture) {
	id, l := f.seedClaimed()
	ts := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	events := []executor.Event{
		{RunID: id, Seq: 1, TS: ts, Level: executor.LevelInfo, Source: "System", Message: "validate: ok", Phase: executor.PhaseValidate},
		{RunID: id, Seq: 2, Level: executor.LevelWarn, Source: "Vercel", Message: "slow", Data: json.RawMessage(`{"ms":1200,"tags":["a"]}`)},
		{RunID: id, Seq: 3, Level: executor.LevelError, Source: "GitHub", Message: "ci red", Phase: executor.PhaseVerify},
		{RunID: id, Seq: 4, Level: executor.LevelSuccess, Source: "System", Message: "done"},
		{RunID: id, Seq: 5, Level: executor.LevelDebug, Source: "Kubernetes", Message: "pods: 3/3 — ✓ ünïcode"},
	}
	require.NoError(t, f.appendRows(l, events, nil))
	require.NoError(t, f.appendRows(l, nil, nil), "an empty batch is a no-op")

	got, err := f.st.ListEvents(f.ctx, id, 0, 0)
	require.NoError(t, err)
	require.Len(t, got, 5)
	for i, e := range got {
		w := events[i]
		assert.Equal(t, w.RunID, e.RunID)
		assert.Equal(t, w.Seq, e.Seq)
		assert.Equal(t, w.Level, e.Level)
		assert.Equal(t, w.Source, e.Source)
		assert.Equal(t, w.Message, e.Message)
		assert.Equal(t, w.Phase, e.Phase)
		assert.False(t, e.TS.IsZero(), "ts defaults to now")
		if len(w.Data) > 0 {
			assert.JSONEq(t, string(w.Data), string(e.Data))
		} else {
			assert.True(t, len(e.Data) == 0 || string(e.Data) == "null", "no data: %s", e.Data)
		}
	}
	assert.True(t, ts.Equal(got[0].TS), "ts round trip: %v", got[0].TS)

	page, err := f.st.ListEvents(f.ctx, id, 2, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, []int{3, 4}, []int{page[0].Seq, page[1].Seq})
	page, err = f.st.ListEvents(f.ctx, id, 5, 10)
	require.NoError(t, err)
	assert.Empty(t, page)

	other := f.seedRun("A", "")
	empty, err := f.st.ListEvents(f.ctx, other, 0, 10)
	require.NoError(t, err)
	assert.Empty(t, empty)

	arts := []executor.Artifact{
		{RunID: id, Kind: executor.ArtifactLink, Title: "Deployment", Value: "https://web.example.vercel.app"},
		{RunID: id, Kind: executor.ArtifactFile, Title: "report.md", Value: "# Report\n\nall good\n"},
		{RunID: id, Kind: executor.ArtifactDiff, Title: "schema.diff", Value: "+ create table x ();"},
	}
	for _, a := range arts {
		require.NoError(t, f.st.PutArtifact(f.ctx, l, a))
	}
	gotArts, err := f.st.ListArtifacts(f.ctx, id)
	require.NoError(t, err)
	require.Len(t, gotArts, 3)
	for i, a := range gotArts {
		assert.Positive(t, a.ID)
		assert.False(t, a.CreatedAt.IsZero())
		assert.Equal(t, arts[i].Kind, a.Kind, "insertion order")
		assert.Equal(t, arts[i].Title, a.Title)
		assert.Equal(t, arts[i].Value, a.Value)
		assert.Equal(t, id, a.RunID)
	}
	none, err := f.st.ListArtifacts(f.ctx, other)
	require.NoError(t, err)
	assert.Empty(t, none)
}

// testEventBatchReplay: a batch sent again (a retry after a lost response)
// inserts nothing twice, and a batch overlapping stored seqs keeps the
// stored rows and adds the new ones.
func testEventBatchReplay(t *testing.T, f *fixture) {
	id, l := f.seedClaimed()
	batch := func(from, to int, tag string) []executor.Event {
		var out []executor.Event
		for s := from; s <= to; s++ {
			out = append(out, executor.Event{RunID: id, Seq: s, Level: executor.LevelInfo, Source: "System",
				Message: fmt.Sprintf("%s %d", tag, s)})
		}
		return out
	}
	first := batch(1, 5, "first")
	require.NoError(t, f.appendRows(l, first, nil))
	for range 3 {
		require.NoError(t, f.appendRows(l, first, nil), "replaying a batch is not an error")
	}
	assert.Equal(t, 5, f.count(`SELECT count(*) FROM public.run_events WHERE run_id = $1`, id))

	require.NoError(t, f.appendRows(l, batch(4, 8, "second"), nil))
	assert.Equal(t, 8, f.count(`SELECT count(*) FROM public.run_events WHERE run_id = $1`, id))
	assert.Equal(t, 8, f.count(`SELECT count(DISTINCT seq) FROM public.run_events WHERE run_id = $1`, id))
	assert.Equal(t, "first 4", deref(f.text(`SELECT message FROM public.run_events WHERE run_id = $1 AND seq = 4`, id)),
		"a stored event is never overwritten")
	assert.Equal(t, "second 8", deref(f.text(`SELECT message FROM public.run_events WHERE run_id = $1 AND seq = 8`, id)))
}

func testSteps(t *testing.T, f *fixture) {
	id, l := f.seedClaimed()
	steps := []executor.Step{
		{RunID: id, Idx: 0, StepID: "build", Title: "Build", Kind: "tool", Tool: strp("vercel"), Action: strp("deploy"),
			Args: json.RawMessage(`{"project":"web"}`), Status: "queued"},
		{RunID: id, Idx: 1, StepID: "verify", Title: "Verify", Status: "queued"},
	}
	require.NoError(t, f.appendRows(l, nil, steps))
	require.NoError(t, f.appendRows(l, nil, nil), "an empty batch is a no-op")
	assert.Equal(t, 2, f.count(`SELECT count(*) FROM public.run_steps WHERE run_id = $1`, id))
	assert.Equal(t, "system|{}", deref(f.text(`SELECT kind || '|' || args::text FROM public.run_steps WHERE run_id = $1 AND idx = 1`, id)),
		"kind and args default")

	started := time.Now().UTC().Truncate(time.Millisecond)
	finished := started.Add(2 * time.Second)
	steps[0].Status = "succeeded"
	steps[0].StartedAt, steps[0].FinishedAt = &started, &finished
	steps[1].Status = "failed"
	steps[1].Error = strp("timeout")
	require.NoError(t, f.appendRows(l, nil, steps))
	require.NoError(t, f.appendRows(l, nil, steps), "an upsert replayed is idempotent")
	assert.Equal(t, 2, f.count(`SELECT count(*) FROM public.run_steps WHERE run_id = $1`, id))
	assert.Equal(t, "succeeded|vercel|deploy|web", deref(f.text(`
		SELECT status::text || '|' || tool || '|' || action || '|' || (args->>'project')
		  FROM public.run_steps WHERE run_id = $1 AND idx = 0`, id)))
	assert.Equal(t, 1, f.count(`SELECT count(*) FROM public.run_steps WHERE run_id = $1 AND idx = 0
		AND started_at = $2 AND finished_at = $3`, id, started, finished))
	assert.Equal(t, "failed|timeout", deref(f.text(`SELECT status::text || '|' || error FROM public.run_steps WHERE run_id = $1 AND idx = 1`, id)))

	err := f.appendRows(l, nil, []executor.Step{{RunID: id, Idx: 2, StepID: "x", Title: "X", Status: "bogus"}})
	requireKind(t, err, executor.ErrInvalidInput, "a status outside the step_status enum")
}

// testUnstorableText: NUL bytes and invalid UTF-8 (a provider's build log
// may carry both) cannot be stored as text or jsonb; every write path makes
// them U+FFFD instead of failing, so a run with such output still finishes.
func testUnstorableText(t *testing.T, f *fixture) {
	const bad = "exit\x00code \xff1"
	const stored = "exit\uFFFDcode \uFFFD1"
	id, l := f.seedClaimed()
	require.NoError(t, f.appendRows(l,
		[]executor.Event{{RunID: id, Seq: 1, Level: executor.LevelInfo, Source: "Vercel", Message: bad,
			Data: json.RawMessage(`{"line":"a\u0000b","n":12345678901234567890}`)}},
		[]executor.Step{{RunID: id, Idx: 0, StepID: "build", Title: bad, Status: "failed", Error: strp(bad),
			Args: json.RawMessage(`{"k\u0000":"v"}`)}}))
	assert.Equal(t, stored+"|a\uFFFDb|12345678901234567890", deref(f.text(
		`SELECT message || '|' || (data->>'line') || '|' || (data->>'n') FROM public.run_events WHERE run_id = $1`, id)),
		"numbers keep their digits")
	assert.Equal(t, stored+"|"+stored+`|{"k`+"\uFFFD"+`": "v"}`, deref(f.text(
		`SELECT title || '|' || error || '|' || args::text FROM public.run_steps WHERE run_id = $1`, id)))
	require.NoError(t, f.st.PutArtifact(f.ctx, l, executor.Artifact{RunID: id, Kind: "file", Title: bad, Value: bad}))
	assert.Equal(t, stored+"|"+stored, deref(f.text(`SELECT title || '|' || value FROM public.artifacts WHERE run_id = $1`, id)))
	require.NoError(t, f.st.UpsertSpecDoc(f.ctx, l, "nul/prd", bad, bad))
	assert.Equal(t, stored+"|"+stored, deref(f.text(`SELECT title || '|' || content FROM public.spec_docs WHERE slug = 'nul/prd'`)))

	ok, err := f.st.FinishRun(f.ctx, executor.Finish{Lease: l, Status: executor.StatusError, ErrorMessage: bad,
		Output: json.RawMessage(`{"log":"x\u0000y"}`),
		Events: []executor.Event{{RunID: id, Attempt: l.Attempt, Seq: 2, Level: executor.LevelError, Source: "System", Message: bad}}})
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "error|"+stored+"|x\uFFFDy", deref(f.text(`SELECT status::text || '|' || error_message || '|' || (output->>'log') FROM public.runs WHERE id = $1`, id)))
	assert.Equal(t, stored, deref(f.text(`SELECT message FROM public.run_events WHERE run_id = $1 AND seq = 2`, id)))

	// A requeue's reason (an automatic retry after a failed preflight).
	id3, l3 := f.seedClaimed()
	if rq, ok := f.st.(executor.Requeuer); ok {
		ok, err := rq.RequeueRun(f.ctx, l3, time.Second, bad)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, "queued", deref(f.text(`SELECT status::text FROM public.runs WHERE id = $1`, id3)))
	}

	// The batched finish path too.
	id2, l2 := f.seedClaimed()
	refused, err := f.st.AppendRows(f.ctx, l2.Worker, executor.Rows{Finishes: []executor.Finish{{Lease: l2, Status: executor.StatusError,
		ErrorMessage: bad, Events: []executor.Event{{Seq: 1, Level: executor.LevelError, Source: "System", Message: bad}}}}})
	require.NoError(t, err)
	require.Empty(t, refused)
	assert.Equal(t, "error|"+stored, deref(f.text(`SELECT status::text || '|' || error_message FROM public.runs WHERE id = $1`, id2)))
}
