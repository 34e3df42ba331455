package supabase_test

// The red-team suite: each test plays an attacker holding the public anon
// key (or a signed-in user's token, or a daemon paused mid-write) against
// the database's own defences, through the PostgREST test server (anon, two
// signed-in users, the service role) and through a direct connection. Each
// attack is one that worked before the trust-boundary migration.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
	"github.com/opscontrolroom/opsd/supabase/reststore"
)

const (
	redUserA = "aaaaaaaa-1111-4000-8000-0000000000a1" // an approver
	redUserB = "bbbbbbbb-2222-4000-8000-0000000000b2" // an approver
	redUserC = "cccccccc-3333-4000-8000-0000000000c3" // not an approver
)

// redTeam is one database behind a PostgREST test server, with a store per
// principal.
type redTeam struct {
	db      *pgtest.DB
	srv     *postgresttest.Server
	service *reststore.Store
	direct  *pgstore.Store
	anon    *reststore.Store
	users   map[string]*reststore.Store
}

func newRedTeam(t *testing.T) *redTeam {
	t.Helper()
	db := pgtest.NewDB(t)
	srv := postgresttest.New(t, db.URL, restJWTSecret)
	open := func(key string, rt http.RoundTripper) *reststore.Store {
		cfg := reststore.Config{URL: srv.URL, ServiceRoleKey: key}
		if rt != nil {
			cfg.HTTPClient = &http.Client{Transport: rt}
		}
		s, err := reststore.New(cfg)
		require.NoError(t, err)
		t.Cleanup(s.Close)
		return s
	}
	rt := &redTeam{db: db, srv: srv, service: open(srv.ServiceKey(), nil), anon: open(srv.AnonKey(), nil),
		direct: openPGStore(t, db.URL), users: map[string]*reststore.Store{}}
	for _, u := range []string{redUserA, redUserB, redUserC} {
		// supabase-js sends the anon key as apikey and the user's token as bearer.
		rt.users[u] = open(srv.UserToken(u), apikeyTransport{key: srv.AnonKey()})
	}
	for _, u := range []string{redUserA, redUserB} {
		_, err := db.Pool.Exec(context.Background(), `INSERT INTO approvers (user_id, name) VALUES ($1, 'red team')`, u)
		require.NoError(t, err)
	}
	return rt
}

// raw sends one request as the browser would, returning status and body.
func (rt *redTeam) raw(t *testing.T, token, method, path string, body any) (int, string) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(method, rt.srv.URL+postgresttest.Prefix+path, bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("apikey", rt.srv.AnonKey())
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Prefer", "return=representation")
	resp, err := rt.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestRedTeamApprovals: approval is independent. The anon key approves
// nothing, a user who is not an approver approves nothing, an approver
// does not approve a run they created, and the operator must name
// themselves. Each refusal says why.
func TestRedTeamApprovals(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	ctx := pgCtx(t)
	mine, err := rt.users[redUserA].SubmitRun(ctx, executor.NewRun{Env: "prod", Kind: "deploy", Intent: "ship prod"})
	require.NoError(t, err)
	require.Equal(t, redUserA, deref(mine.CreatedBy))

	refusals := []struct {
		who   string
		store *reststore.Store
		kind  error
		says  string
	}{
		{"anon", rt.anon, executor.ErrPermission, "anonymous callers may not approve"},
		{"a user who is not an approver", rt.users[redUserC], executor.ErrPermission, "is not an approver"},
		{"the approver who created the run", rt.users[redUserA], executor.ErrPermission, "four-eyes"},
		{"the service role without an operator name", rt.service, executor.ErrInvalidInput, "must name the operator"},
	}
	for _, r := range refusals {
		ok, err := r.store.ApproveRun(ctx, mine.ID, "")
		require.Error(t, err, r.who)
		assert.False(t, ok, r.who)
		assert.ErrorIs(t, err, r.kind, "%s: %v", r.who, err)
		assert.Contains(t, err.Error(), r.says, r.who)
		if r.who != "the approver who created the run" { // who may cancel their run may reject it
			_, err = r.store.RejectRun(ctx, mine.ID, "", "no")
			require.ErrorIs(t, err, r.kind, "%s may not reject either", r.who)
		}
	}
	run, err := rt.service.GetRun(ctx, mine.ID)
	require.NoError(t, err)
	require.Nil(t, run.ApprovedAt, "no refused approval left a mark")
	require.Equal(t, executor.StatusQueued, run.Status)

	ok, err := rt.users[redUserB].ApproveRun(ctx, mine.ID, "")
	require.NoError(t, err)
	assert.True(t, ok, "another approver approves")
	run, err = rt.service.GetRun(ctx, mine.ID)
	require.NoError(t, err)
	assert.Equal(t, redUserB, deref(run.ApprovedBy), "the approver's own uid is recorded, whatever they pass")
	require.NotNil(t, run.ApprovedAt)
	var msg string
	require.NoError(t, rt.db.Pool.QueryRow(ctx, `SELECT message FROM run_events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1`, mine.ID).Scan(&msg))
	assert.Equal(t, "approved by "+redUserB+" before it started", msg, "a System event names the approver")
	_, err = rt.users[redUserB].RejectRun(ctx, mine.ID, "", "changed my mind")
	require.ErrorContains(t, err, "already approved", "an approved run is canceled, not rejected")

	// A rejection ends the run canceled with the reason, and says who.
	other, err := rt.users[redUserC].SubmitRun(ctx, executor.NewRun{Env: "prod", Kind: "deploy", Intent: "ship prod too"})
	require.NoError(t, err)
	_, err = rt.users[redUserB].RejectRun(ctx, other.ID, "", "  ")
	require.ErrorContains(t, err, "p_reason must say why")
	ok, err = rt.users[redUserB].RejectRun(ctx, other.ID, "", "freeze until Monday")
	require.NoError(t, err)
	assert.True(t, ok)
	run, err = rt.service.GetRun(ctx, other.ID)
	require.NoError(t, err)
	assert.Equal(t, executor.StatusCanceled, run.Status)
	assert.Equal(t, "rejected by "+redUserB+": freeze until Monday", deref(run.ErrorMessage))
	assert.Equal(t, redUserB, deref(run.RejectedBy))
	require.NoError(t, rt.db.Pool.QueryRow(ctx, `SELECT message FROM run_events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1`, other.ID).Scan(&msg))
	assert.Equal(t, "run rejected by "+redUserB+" before it started: rejected by "+redUserB+": freeze until Monday", msg)

	// The operator CLI names itself and is recorded as such.
	third, err := rt.service.SubmitRun(ctx, executor.NewRun{Env: "prod", Kind: "deploy"})
	require.NoError(t, err)
	ok, err = rt.direct.ApproveRun(ctx, third.ID, "alice@ops")
	require.NoError(t, err)
	assert.True(t, ok)
	run, err = rt.direct.GetRun(ctx, third.ID)
	require.NoError(t, err)
	assert.Equal(t, "operator:alice@ops", deref(run.ApprovedBy))

	// Browser callers cannot approve by writing the columns either.
	code, body := rt.raw(t, rt.srv.UserToken(redUserA), http.MethodPatch, "runs?id=eq."+other.ID, map[string]any{"approved_by": "me"})
	assert.Contains(t, []int{401, 403}, code, body)
}

// TestRedTeamApprovalNeedsAKnownRequester: a browser approver cannot
// approve a run whose requester is unknown (made or retried with the anon
// key: the approver may have sent it themselves), only an operator can; a
// run the operator side submitted is approvable in the browser. An approver
// rejects only runs before their action phase, not one already acting.
func TestRedTeamApprovalNeedsAKnownRequester(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	ctx := pgCtx(t)
	anonRun, err := rt.anon.SubmitRun(ctx, executor.NewRun{Env: "prod", Kind: "deploy", Intent: "ship prod"})
	require.NoError(t, err)
	ok, err := rt.users[redUserA].ApproveRun(ctx, anonRun.ID, "")
	require.ErrorIs(t, err, executor.ErrPermission)
	assert.False(t, ok)
	assert.Contains(t, err.Error(), "was made with the anon key, so who asked for it is unknown")
	ok, err = rt.direct.ApproveRun(ctx, anonRun.ID, "alice@ops")
	require.NoError(t, err)
	assert.True(t, ok, "an operator approves it")

	// The anon key retries a shared run: the copy's requester is unknown too.
	failed, err := rt.service.SubmitRun(ctx, executor.NewRun{Env: "prod", Kind: "deploy"})
	require.NoError(t, err)
	finishRun(t, rt.db.Pool, failed.ID, "error", 0)
	var retry string
	code, body := rt.raw(t, rt.srv.AnonKey(), http.MethodPost, "rpc/retry_run", map[string]any{"p_run_id": failed.ID})
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &retry))
	_, err = rt.users[redUserB].ApproveRun(ctx, retry, "")
	require.ErrorContains(t, err, "made with the anon key")

	// An operator's retry of a run the anon key made is still the anon
	// key's request: the chain of retries is walked.
	anonFailed, err := rt.anon.SubmitRun(ctx, executor.NewRun{Env: "prod", Kind: "deploy"})
	require.NoError(t, err)
	finishRun(t, rt.db.Pool, anonFailed.ID, "error", 0)
	opRetry, err := rt.direct.RetryRun(ctx, anonFailed.ID, "bob")
	require.NoError(t, err)
	_, err = rt.users[redUserA].ApproveRun(ctx, opRetry, "")
	require.ErrorContains(t, err, "run "+anonFailed.ID+" was made with the anon key")

	// A run whose creation entry was pruned has no requester on record.
	pruned, err := rt.service.SubmitRun(ctx, executor.NewRun{Env: "prod", Kind: "deploy"})
	require.NoError(t, err)
	_, err = rt.db.Pool.Exec(ctx, `DELETE FROM audit_log WHERE run_id = $1`, pruned.ID)
	require.NoError(t, err)
	_, err = rt.users[redUserA].ApproveRun(ctx, pruned.ID, "")
	require.ErrorContains(t, err, "was made with no creator on record")

	// What the operator side submitted, a browser approver approves.
	opRun, err := rt.service.SubmitRun(ctx, executor.NewRun{Env: "prod", Kind: "deploy"})
	require.NoError(t, err)
	ok, err = rt.users[redUserB].ApproveRun(ctx, opRun.ID, "")
	require.NoError(t, err)
	assert.True(t, ok)

	// Rejection is for a run waiting for approval, not one in its action.
	busy, err := rt.users[redUserC].SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Lane: "busy"})
	require.NoError(t, err)
	claimed, err := rt.direct.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w", Lane: "busy", Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	ok, err = rt.direct.SetPhase(ctx, executor.Lease{RunID: busy.ID, Worker: "w", Attempt: claimed[0].Attempt}, executor.PhaseAction)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = rt.users[redUserA].RejectRun(ctx, busy.ID, "", "not yours to stop")
	require.ErrorContains(t, err, "is in its action phase, past its approval")
	got, err := rt.service.GetRun(ctx, busy.ID)
	require.NoError(t, err)
	assert.Equal(t, executor.StatusRunning, got.Status)
}

// TestRedTeamScheduledRunApproval: a scheduled run was asked for by whoever
// wrote its schedule: a user who changed an operator's schedule may not
// approve the runs it makes, and the runs of a schedule the anon key wrote
// are the operators' to approve; an operator's own schedule's runs are
// approvable in the browser.
func TestRedTeamScheduledRunApproval(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	ctx := pgCtx(t)
	enabled := true
	for _, name := range []string{"ops-prod", "ops-only"} {
		_, err := rt.service.SaveSchedule(ctx, executor.Schedule{Name: name, Cron: "@hourly", Env: "prod", Kind: "deploy", Enabled: &enabled}, "ops")
		require.NoError(t, err)
	}
	code, body := rt.raw(t, rt.srv.UserToken(redUserB), http.MethodPatch, "run_schedules?name=eq.ops-prod",
		map[string]any{"plan": map[string]any{"title": "B's deploy"}})
	require.Equal(t, http.StatusOK, code, body)
	require.NotEqual(t, "[]", body, "a plain shared schedule is the browsers' to change")
	code, body = rt.raw(t, rt.srv.AnonKey(), http.MethodPost, "run_schedules",
		map[string]any{"name": "anon-prod", "cron": "@hourly", "env": "prod", "kind": "deploy"})
	require.Equal(t, http.StatusCreated, code, body)

	_, err := rt.db.Pool.Exec(ctx, `UPDATE run_schedules SET next_run_at = now() - interval '1 second'`)
	require.NoError(t, err)
	var enqueued []byte
	require.NoError(t, rt.db.Pool.QueryRow(ctx, `SELECT opsd_enqueue_due_schedules(20)`).Scan(&enqueued))
	runOf := func(schedule string) string {
		var id string
		require.NoError(t, rt.db.Pool.QueryRow(ctx, `SELECT r.id::text FROM runs r JOIN run_schedules s ON s.id = r.schedule_id
			WHERE s.name = $1`, schedule).Scan(&id), "%s: %s", schedule, enqueued)
		return id
	}

	_, err = rt.users[redUserB].ApproveRun(ctx, runOf("ops-prod"), "")
	require.ErrorIs(t, err, executor.ErrPermission)
	assert.Contains(t, err.Error(), "you wrote the schedule that made run")
	_, err = rt.users[redUserA].ApproveRun(ctx, runOf("anon-prod"), "")
	require.ErrorIs(t, err, executor.ErrPermission)
	assert.Contains(t, err.Error(), "made by a schedule the anon key wrote")
	for _, name := range []string{"ops-prod", "ops-only"} {
		ok, err := rt.users[redUserA].ApproveRun(ctx, runOf(name), "")
		require.NoError(t, err, name)
		assert.True(t, ok, name)
	}
	ok, err := rt.direct.ApproveRun(ctx, runOf("anon-prod"), "alice@ops")
	require.NoError(t, err)
	assert.True(t, ok, "an operator approves it")

	// Who wrote a schedule is not forgotten when the schedule is deleted
	// and its audit entries are pruned: the next tick's run still names B.
	_, err = rt.db.Pool.Exec(ctx, `UPDATE run_schedules SET next_run_at = now() - interval '1 second', overlap = 'queue' WHERE name = 'ops-prod'`)
	require.NoError(t, err)
	var second string
	require.NoError(t, rt.db.Pool.QueryRow(ctx, `SELECT opsd_enqueue_due_schedules(20)`).Scan(&enqueued))
	require.NoError(t, rt.db.Pool.QueryRow(ctx, `SELECT r.id::text FROM runs r JOIN run_schedules s ON s.id = r.schedule_id
		WHERE s.name = 'ops-prod' AND r.approved_at IS NULL`).Scan(&second), "%s", enqueued)
	code, body = rt.raw(t, rt.srv.UserToken(redUserB), http.MethodDelete, "run_schedules?name=eq.ops-prod", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.NotEqual(t, "[]", body, "B deletes the plain shared schedule")
	_, err = rt.db.Pool.Exec(ctx, `DELETE FROM audit_log WHERE run_id IS NULL`) // as retention would, in time
	require.NoError(t, err)
	_, err = rt.users[redUserB].ApproveRun(ctx, second, "")
	require.ErrorContains(t, err, "you wrote the schedule that made run")

	// Browsers cannot write who wrote a schedule.
	code, body = rt.raw(t, rt.srv.UserToken(redUserB), http.MethodPatch, "run_schedules?name=eq.ops-only",
		map[string]any{"written_by": []string{"operator:ops"}})
	assert.Contains(t, []int{400, 401, 403}, code, body)
}

// TestRedTeamAuditOfAReusedID: the browser chooses run ids; a run made with
// the id of a pruned one does not show the old run's audit entries.
func TestRedTeamAuditOfAReusedID(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	ctx := pgCtx(t)
	const id = "0d0d0d0d-0000-4000-8000-00000000d0d0"
	code, body := rt.raw(t, rt.srv.UserToken(redUserC), http.MethodPost, "runs", map[string]any{"id": id, "env": "prod", "kind": "deploy"})
	require.Equal(t, http.StatusCreated, code, body)
	_, err := rt.users[redUserB].RejectRun(ctx, id, "", "creds for db-prod-7 leaked")
	require.NoError(t, err)
	_, err = rt.db.Pool.Exec(ctx, `DELETE FROM runs WHERE id = $1`, id) // as a prune would
	require.NoError(t, err)
	code, body = rt.raw(t, rt.srv.AnonKey(), http.MethodPost, "runs", map[string]any{"id": id, "env": "dev", "kind": "healthcheck"})
	require.Equal(t, http.StatusCreated, code, body)
	code, body = rt.raw(t, rt.srv.AnonKey(), http.MethodGet, "audit_log?run_id=eq."+id+"&select=action", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `[{"action":"created"}]`, body, "the old run's rejection and its reason stay hidden")
}

// TestRedTeamBrowserRights: what the anon key and a signed-in user may not
// do when they create or cancel runs.
func TestRedTeamBrowserRights(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	ctx := pgCtx(t)
	var sessA string
	require.NoError(t, rt.db.Pool.QueryRow(ctx, `INSERT INTO sessions (title, created_by) VALUES ('A', $1) RETURNING id`, redUserA).Scan(&sessA))

	// Jumping the queue.
	_, err := rt.anon.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Priority: pgPtr(-1000)})
	require.ErrorIs(t, err, executor.ErrInvalidInput)
	assert.Contains(t, err.Error(), "priority must be between 0 and 1000")
	_, err = rt.users[redUserC].SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Priority: pgPtr(5000)})
	require.ErrorIs(t, err, executor.ErrInvalidInput)
	r, err := rt.service.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Priority: pgPtr(-5)})
	require.NoError(t, err, "the operator may still put a run first")
	assert.Equal(t, -5, r.Priority)

	// A run into someone else's session (it would block their lane).
	_, err = rt.anon.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", SessionID: &sessA})
	require.ErrorIs(t, err, executor.ErrPermission)
	_, err = rt.users[redUserC].SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", SessionID: &sessA})
	require.ErrorIs(t, err, executor.ErrPermission)
	_, err = rt.users[redUserA].SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", SessionID: &sessA})
	require.NoError(t, err, "the session's owner may")

	// Claim columns, approval and lease columns are never the caller's.
	for col, v := range map[string]any{"claimed_by": "evil", "approved_at": "2020-01-01T00:00:00Z", "attempt": 7,
		"lease_expires_at": "2999-01-01T00:00:00Z", "status": "running", "input": map[string]any{"target": "production"},
		"template_id": "00000000-0000-4000-8000-000000000001", "dry_run": true, "timeout_seconds": 99999} {
		code, body := rt.raw(t, rt.srv.AnonKey(), http.MethodPost, "runs", map[string]any{"env": "dev", "kind": "healthcheck", col: v})
		assert.Contains(t, []int{400, 401, 403}, code, "anon inserts a run with %s: %s", col, body)
	}

	// A cancel is stamped with the database's clock, not the caller's.
	q, err := rt.anon.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck"})
	require.NoError(t, err)
	code, body := rt.raw(t, rt.srv.AnonKey(), http.MethodPatch, "runs?id=eq."+q.ID,
		map[string]any{"status": "canceled", "canceled_at": "2001-01-01T00:00:00Z"})
	require.Equal(t, http.StatusOK, code, body)
	got, err := rt.service.GetRun(ctx, q.ID)
	require.NoError(t, err)
	require.NotNil(t, got.CanceledAt)
	assert.WithinDuration(t, time.Now(), *got.CanceledAt, time.Minute)
}

// TestRedTeamSchedules replays the schedule attacks of the security review
// through PostgREST. The anon key poisoned every schedule with one row (a
// 9000-character lane the wake-up NOTIFY refused, in the one transaction
// that enqueues every due schedule), and took over an operator's template
// schedule by changing its env, kind, plan and cron. Neither works now, and
// the operator's schedules keep firing.
func TestRedTeamSchedules(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	ctx := pgCtx(t)
	var tpl string
	require.NoError(t, rt.db.Pool.QueryRow(ctx, `INSERT INTO run_templates (slug, title, template_yaml) VALUES ('spec-check', 't', 'version: 1')
		RETURNING id`).Scan(&tpl))
	enabled := true
	weekdays, err := rt.service.SaveSchedule(ctx, executor.Schedule{Name: "weekdays", Cron: "0 9 * * mon-fri", Env: "dev", Kind: "spec",
		TemplateID: &tpl, Input: json.RawMessage(`{"project":"docs-dev"}`), Enabled: &enabled}, "ops")
	require.NoError(t, err)
	require.Nil(t, weekdays.CreatedBy, "the CLI's schedules are shared")
	_, err = rt.service.SaveSchedule(ctx, executor.Schedule{Name: "nightly-health", Cron: "@every 2s", Env: "dev", Kind: "healthcheck",
		Input: json.RawMessage(`{"target":"web"}`), Overlap: "queue", Enabled: &enabled}, "ops")
	require.NoError(t, err)

	// The poison: refused at INSERT, saying why.
	code, body := rt.raw(t, rt.srv.AnonKey(), http.MethodPost, "run_schedules",
		map[string]any{"name": "poison", "cron": "@every 1s", "env": "dev", "kind": "healthcheck", "lane": strings.Repeat("L", 9000)})
	require.Equal(t, http.StatusBadRequest, code, body)
	assert.Contains(t, body, "is not a lane name")
	code, body = rt.raw(t, rt.srv.AnonKey(), http.MethodPost, "runs",
		map[string]any{"env": "dev", "kind": "healthcheck", "lane": strings.Repeat("L", 9000)})
	require.Equal(t, http.StatusBadRequest, code, body)
	assert.Contains(t, body, "is not a lane name")
	// So is a 57 kB cron expression, which made every enqueue pass slow.
	code, body = rt.raw(t, rt.srv.AnonKey(), http.MethodPost, "run_schedules",
		map[string]any{"name": "slow", "cron": strings.Repeat("1,", 28000) + "1 * * * *", "env": "dev", "kind": "healthcheck"})
	require.Equal(t, http.StatusBadRequest, code, body)
	assert.Contains(t, body, "the limit is 128")

	// The takeover: nothing is changed or deleted, by anon or by a user.
	for _, token := range []string{rt.srv.AnonKey(), rt.srv.UserToken(redUserC)} {
		code, body = rt.raw(t, token, http.MethodPatch, "run_schedules?name=eq.weekdays", map[string]any{"env": "prod", "kind": "deploy",
			"cron": "@every 1s", "overlap": "queue", "plan": map[string]any{"inputs": []any{map[string]any{"key": "branch", "value": "attacker-branch"}}}})
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, "[]", body)
		code, body = rt.raw(t, token, http.MethodPatch, "run_schedules?name=eq.nightly-health", map[string]any{"enabled": false})
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, "[]", body, "nor paused")
		code, body = rt.raw(t, token, http.MethodDelete, "run_schedules?name=in.(weekdays,nightly-health)", nil)
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, "[]", body)
	}
	var env, kind, cron, overlap string
	var plan []byte
	require.NoError(t, rt.db.Pool.QueryRow(ctx, `SELECT env, kind, cron, overlap, plan::text FROM run_schedules WHERE name = 'weekdays'`).
		Scan(&env, &kind, &cron, &overlap, &plan))
	assert.Equal(t, []string{"dev", "spec", "0 9 * * mon-fri", "skip", ""}, []string{env, kind, cron, overlap, string(plan)})
	// They may still read it, and the operator may change it.
	code, body = rt.raw(t, rt.srv.AnonKey(), http.MethodGet, "run_schedules?name=eq.weekdays&select=name", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `[{"name":"weekdays"}]`, body)
	_, err = rt.service.SetScheduleEnabled(ctx, "weekdays", false, "ops")
	require.NoError(t, err)

	// A plain shared schedule (no template, no input) stays the browsers'.
	code, body = rt.raw(t, rt.srv.AnonKey(), http.MethodPost, "run_schedules",
		map[string]any{"name": "plain", "cron": "@hourly", "env": "dev", "kind": "healthcheck"})
	require.Equal(t, http.StatusCreated, code, body)
	code, body = rt.raw(t, rt.srv.UserToken(redUserC), http.MethodPatch, "run_schedules?name=eq.plain", map[string]any{"enabled": false})
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"enabled":false`)

	// And the operator's schedule keeps firing.
	require.Eventually(t, func() bool {
		res, err := rt.service.EnqueueDueSchedules(ctx, 20)
		require.NoError(t, err)
		require.Zero(t, res.Failed)
		return res.Enqueued > 0
	}, 10*time.Second, 200*time.Millisecond)
	assert.Equal(t, 1, redCount(t, rt, `SELECT count(*) FROM runs r JOIN run_schedules s ON s.id = r.schedule_id
		WHERE s.name = 'nightly-health' AND r.input = '{"target":"web"}'`))
}

// fenceStore is a store the daemon writes through, read back as an operator.
type fenceStore interface {
	executor.Store
	executor.OperatorStore
}

// fenceStores are the two ways the daemon writes: PostgREST with the
// service-role key, and a direct connection.
func fenceStores(rt *redTeam) map[string]fenceStore {
	return map[string]fenceStore{"REST": rt.service, "direct": rt.direct}
}

func redEvent(runID string, attempt, seq int, msg string) executor.Event {
	return executor.Event{RunID: runID, Attempt: attempt, Seq: seq, Level: executor.LevelInfo, Source: "System", Message: msg}
}

// claimTwoAttemptRun submits a run that may be attempted twice into lane
// and claims it for worker through st, returning the lease.
func (rt *redTeam) claimTwoAttemptRun(t *testing.T, st fenceStore, lane, worker string) executor.Lease {
	t.Helper()
	ctx := pgCtx(t)
	run, err := st.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Lane: lane})
	require.NoError(t, err)
	_, err = rt.db.Pool.Exec(ctx, `UPDATE runs SET max_attempts = 2 WHERE id = $1`, run.ID)
	require.NoError(t, err)
	claimed, err := st.ClaimRuns(ctx, executor.ClaimRequest{Worker: worker, Lane: lane, Limit: 1, LeaseFor: time.Minute})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	return executor.Lease{RunID: run.ID, Worker: worker, Attempt: claimed[0].Attempt}
}

// expireAndReap lets the run's lease run out (its daemon paused) and has
// another daemon's reaper requeue it.
func (rt *redTeam) expireAndReap(t *testing.T, st fenceStore, runID string) {
	t.Helper()
	ctx := pgCtx(t)
	_, err := rt.db.Pool.Exec(ctx, `UPDATE runs SET lease_expires_at = now() - interval '1 millisecond' WHERE id = $1`, runID)
	require.NoError(t, err)
	reaped, err := st.ReapStale(ctx)
	require.NoError(t, err)
	require.Len(t, reaped, 1)
	assert.Equal(t, "requeued", reaped[0].Action)
}

// TestRedTeamStaleWriter: a daemon paused mid-write whose run was reaped
// (or finished) stores nothing more, through either store, and cannot take
// the seq numbers the next attempt needs.
func TestRedTeamStaleWriter(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	for name, st := range fenceStores(rt) {
		t.Run(name, func(t *testing.T) {
			ctx := pgCtx(t)
			lane := "stale-" + name
			old := rt.claimTwoAttemptRun(t, st, lane, "paused")
			run := executor.Run{ID: old.RunID}
			refused, err := st.AppendRows(ctx, "paused", executor.Rows{Events: []executor.Event{redEvent(run.ID, old.Attempt, 1, "before the pause")}})
			require.NoError(t, err)
			require.Empty(t, refused)

			// The daemon pauses; its lease runs out; another daemon's reaper acts.
			rt.expireAndReap(t, st, run.ID)

			// It wakes up and writes: every row is refused, whatever the path.
			refused, err = st.AppendRows(ctx, "paused", executor.Rows{
				Events: []executor.Event{redEvent(run.ID, old.Attempt, 3, "after the reap")},
				Steps:  []executor.Step{{RunID: run.ID, Attempt: old.Attempt, Idx: 0, StepID: "validate", Title: "Validate", Status: "succeeded"}}})
			require.NoError(t, err)
			assert.Equal(t, []executor.Lease{old}, refused)
			requireKind(t, st.PutArtifact(ctx, old, executor.Artifact{RunID: run.ID, Kind: "file", Title: "late", Value: "x"}), executor.ErrLeaseLost)
			requireKind(t, st.UpsertSpecDoc(ctx, old, "x/prd", "prd.md", "late"), executor.ErrLeaseLost)
			ok, err := st.SetPhase(ctx, old, executor.PhaseAction)
			require.NoError(t, err)
			assert.False(t, ok)
			ok, err = st.FinishRun(ctx, executor.Finish{Lease: old, Status: executor.StatusSuccess,
				Events: []executor.Event{redEvent(run.ID, old.Attempt, 4, "run succeeded")}})
			require.NoError(t, err)
			assert.False(t, ok)

			// The next attempt gets the next seq and a larger attempt.
			again, err := st.ClaimRuns(ctx, executor.ClaimRequest{Worker: "fresh", Lane: lane, Limit: 1})
			require.NoError(t, err)
			require.Len(t, again, 1)
			assert.Equal(t, old.Attempt+1, again[0].Attempt)
			assert.Equal(t, 3, again[0].NextSeq, "seq 1 (before the pause) and 2 (the reaper's) are all there is")
			var msgs []string
			rows, err := rt.db.Pool.Query(ctx, `SELECT message FROM run_events WHERE run_id = $1 ORDER BY seq`, run.ID)
			require.NoError(t, err)
			for rows.Next() {
				var m string
				require.NoError(t, rows.Scan(&m))
				msgs = append(msgs, m)
			}
			require.NoError(t, rows.Err())
			require.Len(t, msgs, 2, "%q", msgs)
			assert.Equal(t, "before the pause", msgs[0])
			assert.Contains(t, msgs[1], "was lost in phase validate")
			assert.Zero(t, redCount(t, rt, `SELECT count(*) FROM run_steps WHERE run_id = $1`, run.ID))
			assert.Zero(t, redCount(t, rt, `SELECT count(*) FROM artifacts WHERE run_id = $1`, run.ID))
			assert.Zero(t, redCount(t, rt, `SELECT count(*) FROM spec_docs WHERE slug = 'x/prd'`))

			// Rows after the finish are refused too.
			fresh := executor.Lease{RunID: run.ID, Worker: "fresh", Attempt: again[0].Attempt}
			ok, err = st.FinishRun(ctx, executor.Finish{Lease: fresh, Status: executor.StatusSuccess,
				Events: []executor.Event{redEvent(run.ID, fresh.Attempt, 3, "run succeeded")}})
			require.NoError(t, err)
			require.True(t, ok)
			refused, err = st.AppendRows(ctx, "fresh", executor.Rows{Events: []executor.Event{redEvent(run.ID, fresh.Attempt, 4, "after the finish")}})
			require.NoError(t, err)
			assert.Equal(t, []executor.Lease{fresh}, refused)
			assert.Equal(t, 3, redCount(t, rt, `SELECT count(*) FROM run_events WHERE run_id = $1`, run.ID),
				"the final event landed with the finish, nothing after it")
		})
	}
}

// TestRedTeamRowsNeedARunInFlight: whoever writes (a table owner with psql
// included), no event, step or artifact row is stored for a queued or
// finished run; and the service role has no direct write path at all.
func TestRedTeamRowsNeedARunInFlight(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	ctx := pgCtx(t)
	queued, err := rt.service.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Lane: "Q"})
	require.NoError(t, err)
	for _, stmt := range []string{
		`INSERT INTO run_events (run_id, seq, level, source, message) VALUES ($1, 1, 'info', 'System', 'forged')`,
		`INSERT INTO artifacts (run_id, kind, title, value) VALUES ($1, 'link', 'forged', 'https://evil.example')`,
		`INSERT INTO run_steps (run_id, idx, step_id, title) VALUES ($1, 0, 'x', 'forged')`,
	} {
		_, err := rt.db.Pool.Exec(ctx, stmt, queued.ID)
		require.Error(t, err, stmt)
		assert.Contains(t, err.Error(), "is queued: rows are written only while a daemon holds the run's lease")
	}
	refused, err := rt.service.AppendRows(ctx, "w", executor.Rows{Events: []executor.Event{redEvent(queued.ID, 1, 1, "forged")}})
	require.NoError(t, err)
	assert.Len(t, refused, 1, "a queued run has no lease to write under")

	// The service-role key reaches the tables only through the fenced functions.
	for _, table := range []string{"run_events", "artifacts", "run_steps"} {
		code, body := rt.raw(t, rt.srv.ServiceKey(), http.MethodPost, table, map[string]any{"run_id": queued.ID})
		assert.Equal(t, http.StatusForbidden, code, "%s: %s", table, body)
	}
	assert.Zero(t, redCount(t, rt, `SELECT count(*) FROM run_events WHERE run_id = $1`, queued.ID))
}

// TestRedTeamAttemptOnlyGrows: a released run's next claim is a new
// attempt, so an old (worker, attempt) pair can never hold the run again;
// the released attempt does not use up max_attempts; nobody lowers attempt.
func TestRedTeamAttemptOnlyGrows(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	for name, st := range fenceStores(rt) {
		t.Run(name, func(t *testing.T) {
			ctx := pgCtx(t)
			lane := "grow-" + name
			run, err := st.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Lane: lane})
			require.NoError(t, err)
			var seen []int
			for i := range 3 {
				c, err := st.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w", Lane: lane, Limit: 1})
				require.NoError(t, err)
				require.Len(t, c, 1)
				seen = append(seen, c[0].Attempt)
				l := executor.Lease{RunID: run.ID, Worker: "w", Attempt: c[0].Attempt}
				if i < 2 {
					ok, err := st.ReleaseRun(ctx, l, "shutting down")
					require.NoError(t, err)
					require.True(t, ok)
					// The released attempt can write nothing even though the
					// same worker will hold the run again.
					refused, err := st.AppendRows(ctx, "w", executor.Rows{Events: []executor.Event{redEvent(run.ID, l.Attempt, 10+i, "late")}})
					require.NoError(t, err)
					assert.Equal(t, []executor.Lease{l}, refused)
				}
			}
			assert.Equal(t, []int{1, 2, 3}, seen)
			got, err := st.GetRun(ctx, run.ID)
			require.NoError(t, err)
			assert.Equal(t, 1, got.AttemptsUsed, "releases give back what they used")
			_, err = rt.db.Pool.Exec(ctx, `UPDATE runs SET attempt = 1 WHERE id = $1`, run.ID)
			require.ErrorContains(t, err, "never decreases")
		})
	}
}

// TestRedTeamEarlierAttemptOfAHeldRun: a worker that holds a run again
// (attempt 2, after its attempt 1 was reaped) cannot write rows of attempt
// 1 under attempt 2's lease: in one batch with attempt 2's own rows, attempt
// 1's events, steps and phase change are refused and reported, and they
// take none of the seq numbers attempt 2 needs.
func TestRedTeamEarlierAttemptOfAHeldRun(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	for name, st := range fenceStores(rt) {
		t.Run(name, func(t *testing.T) {
			ctx := pgCtx(t)
			lane := "again-" + name
			old := rt.claimTwoAttemptRun(t, st, lane, "w")
			run := executor.Run{ID: old.RunID}
			rt.expireAndReap(t, st, run.ID)
			second, err := st.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w", Lane: lane, Limit: 1, LeaseFor: time.Minute})
			require.NoError(t, err)
			require.Len(t, second, 1)
			cur := executor.Lease{RunID: run.ID, Worker: "w", Attempt: second[0].Attempt}
			require.Equal(t, old.Attempt+1, cur.Attempt)
			next := second[0].NextSeq

			refused, err := st.AppendRows(ctx, "w", executor.Rows{
				Events: []executor.Event{
					redEvent(run.ID, old.Attempt, next, "stale: attempt 1 says it deployed"),
					redEvent(run.ID, cur.Attempt, next+1, "attempt 2 validating"),
				},
				Steps:  []executor.Step{{RunID: run.ID, Attempt: old.Attempt, Idx: 0, StepID: "validate", Title: "stale step", Status: "succeeded"}},
				Phases: []executor.PhaseChange{{RunID: run.ID, Attempt: old.Attempt, Phase: executor.PhaseVerify}},
			})
			require.NoError(t, err)
			assert.Equal(t, []executor.Lease{old}, refused, "attempt 1's rows are refused and reported")
			var msgs []string
			rows, err := rt.db.Pool.Query(ctx, `SELECT message FROM run_events WHERE run_id = $1 AND seq >= $2 ORDER BY seq`, run.ID, next)
			require.NoError(t, err)
			for rows.Next() {
				var m string
				require.NoError(t, rows.Scan(&m))
				msgs = append(msgs, m)
			}
			require.NoError(t, rows.Err())
			assert.Equal(t, []string{"attempt 2 validating"}, msgs, "seq %d is left for attempt 2", next)
			assert.Zero(t, redCount(t, rt, `SELECT count(*) FROM run_steps WHERE run_id = $1`, run.ID))
			got, err := st.GetRun(ctx, run.ID)
			require.NoError(t, err)
			require.NotNil(t, got.Phase)
			assert.Equal(t, executor.PhaseValidate, *got.Phase, "attempt 1's phase change did not move attempt 2")

			// A stale finish in the same batch as the current one does not
			// hide it: attempt 2 finishes, attempt 1 is refused.
			refused, err = st.AppendRows(ctx, "w", executor.Rows{Finishes: []executor.Finish{
				{Lease: old, Status: executor.StatusError, ErrorMessage: "stale attempt 1"},
				{Lease: cur, Status: executor.StatusSuccess},
			}})
			require.NoError(t, err)
			assert.Equal(t, []executor.Lease{old}, refused)
			got, err = st.GetRun(ctx, run.ID)
			require.NoError(t, err)
			assert.Equal(t, executor.StatusSuccess, got.Status, "attempt 2's finish was made")
		})
	}
}

// TestRedTeamReapThresholdIsTheOwners: a reaper cannot choose how stale is
// stale. A run whose owner set a 60 s lease is not reaped by anyone before
// that, however short the reaping daemon's own setting.
func TestRedTeamReapThresholdIsTheOwners(t *testing.T) {
	t.Parallel()
	rt := newRedTeam(t)
	ctx := pgCtx(t)
	_, err := rt.service.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Lane: "R"})
	require.NoError(t, err)
	c, err := rt.direct.ClaimRuns(ctx, executor.ClaimRequest{Worker: "healthy", Lane: "R", Limit: 1, LeaseFor: time.Minute})
	require.NoError(t, err)
	require.Len(t, c, 1)
	// The heartbeat is old, as a daemon with a 1 s stale-after would judge it.
	_, err = rt.db.Pool.Exec(ctx, `UPDATE runs SET heartbeat_at = now() - interval '20 seconds' WHERE id = $1`, c[0].ID)
	require.NoError(t, err)
	for _, st := range fenceStores(rt) {
		reaped, err := st.ReapStale(ctx)
		require.NoError(t, err)
		assert.Empty(t, reaped)
	}
	code, body := rt.raw(t, rt.srv.ServiceKey(), http.MethodPost, "rpc/reap_stale_runs", map[string]any{"p_stale_seconds": 1})
	assert.NotEqual(t, http.StatusOK, code, "the old threshold argument is gone: %s", body)
	var exp time.Time
	require.NoError(t, rt.db.Pool.QueryRow(ctx, `SELECT lease_expires_at FROM runs WHERE id = $1`, c[0].ID).Scan(&exp))
	assert.WithinDuration(t, time.Now().Add(time.Minute), exp, 10*time.Second, "the lease the claimer asked for")
}

func redCount(t *testing.T, rt *redTeam, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, rt.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func requireKind(t *testing.T, err error, kind error) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, kind, fmt.Sprint(err))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
