package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
)

// daemonEnv is newCLIEnv with a daemon running and yaml stored as the run
// template slug, and the test's context.
func daemonEnv(t *testing.T, slug, yaml string) (*cliEnv, context.Context) {
	t.Helper()
	c := newCLIEnv(t)
	c.startDaemon()
	c.template(slug, yaml)
	return c, testContext(t)
}

// wantExit runs a command that must exit with code and say want on stderr.
func wantExit(t *testing.T, run runner, code int, want string, args ...string) {
	t.Helper()
	got, stderr := run(nil, args...)
	assert.Equal(t, code, got, args)
	assert.Contains(t, stderr, want, args)
}

// runner runs a CLI command, writing its stdout to out.
type runner func(out *syncBuffer, args ...string) (int, string)

func (c *cliEnv) runner(ctx context.Context) runner {
	return func(out *syncBuffer, args ...string) (int, string) { return c.run(ctx, out, args...) }
}

// followed is a `submit --follow` running in the background.
type followed struct {
	id   string // the submitted run
	out  syncBuffer
	done chan int
}

// followSubmit starts `submit args... --follow` with run and waits until its
// output shows until, by which time the run's id is known.
func followSubmit(t *testing.T, run runner, until string, args ...string) *followed {
	t.Helper()
	f := &followed{done: make(chan int, 1)}
	args = append(append([]string{"submit"}, args...), "--follow", "--interval", "50ms")
	go func() {
		code, _ := run(&f.out, args...)
		f.done <- code
	}()
	waitFor(t, 30*time.Second, fmt.Sprintf("%q in the output of submit --follow", until), func() bool {
		return strings.Contains(f.out.String(), until)
	})
	f.id = firstLine(f.out.String())
	return f
}

// exitCode waits for submit --follow to end and returns its exit code.
func (f *followed) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case code := <-f.done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("submit --follow did not end")
		return 0
	}
}

func TestSubmitFollowSuccess(t *testing.T) {
	t.Parallel()
	c, ctx := daemonEnv(t, "noop", noopTemplate)

	var out syncBuffer
	code, stderr := c.run(ctx, &out, "submit", "--kind", "healthcheck", "--env", "dev", "--lane", "B",
		"--template", "noop", "--intent", "from the CLI", "--priority", "7", "--follow", "--interval", "50ms")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), stderr)

	id := firstLine(out.String())
	require.Regexp(t, uuidPattern, id)
	for _, want := range []string{"validate started", "preflight check ok", "the work is done", "verify started",
		"[SUCCESS]", "run succeeded", "run " + id + " success"} {
		assert.Contains(t, out.String(), want)
	}
	// The row is what the frontend would have inserted.
	run, err := c.store.GetRun(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "B", run.Lane)
	assert.Equal(t, 7, run.Priority)
	assert.Equal(t, "from the CLI", run.Intent)
	assert.Nil(t, run.CreatedBy)
}

func TestSubmitFollowFailingRunExits1(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t)
	c.startDaemon()
	c.template("broken", failingTemplate)

	var out syncBuffer
	code, _ := c.run(testContext(t), &out, "submit", "--kind", "healthcheck", "--env", "dev", "--template", "broken", "-f")
	assert.Equal(t, exitRunError, code)
	assert.Contains(t, out.String(), "[ERROR  ]")
	assert.Contains(t, out.String(), `validate failed: invalid run: step confirm (sleep): sleep duration "soon"`)
	assert.Contains(t, out.String(), " error")
}

// TestFollowIsLiveAndCancelExits3 shows events while the run is still
// running, then cancels it from another command.
func TestFollowIsLiveAndCancelExits3(t *testing.T) {
	t.Parallel()
	c, ctx := daemonEnv(t, "slow", slowTemplate)

	f := followSubmit(t, c.runner(ctx), "action started", "--kind", "incident", "--env", "staging", "--template", "slow")
	id := f.id
	run, err := c.store.GetRun(ctx, id)
	require.NoError(t, err)
	require.Equal(t, executor.StatusRunning, run.Status, "events must stream while the run runs")

	var cancelOut syncBuffer
	code, stderr := c.run(ctx, &cancelOut, "cancel", id)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "canceled run "+id+"\n", cancelOut.String())

	assert.Equal(t, exitRunCanceled, f.exitCode(t))
	assert.Contains(t, f.out.String(), "run "+id+" canceled")

	// Canceling again is refused, and says why.
	wantExit(t, c.runner(ctx), 1, "already finished (canceled)", "cancel", id)
}

func TestApproveLetsAProdDeployGoOn(t *testing.T) {
	t.Parallel()
	c, ctx := daemonEnv(t, "ship", noopTemplate)

	f := followSubmit(t, c.runner(ctx), "waiting for approval", "--kind", "deploy", "--env", "prod", "--template", "ship")
	id := f.id

	var approveOut syncBuffer
	code, stderr := c.run(ctx, &approveOut, "approve", "--as", "alice@laptop", id)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "approved run "+id+" as alice@laptop\n", approveOut.String())
	assert.Equal(t, 0, f.exitCode(t), f.out.String())
	run, err := c.store.GetRun(ctx, id)
	require.NoError(t, err)
	require.NotNil(t, run.ApprovedBy)
	assert.Equal(t, "operator:alice@laptop", *run.ApprovedBy)
	assert.Contains(t, f.out.String(), "approved by operator:alice@laptop; continuing to the action phase",
		"the daemon names the approver in a System event")

	wantExit(t, c.runner(ctx), 1, "already finished (success)", "approve", id)
	wantExit(t, c.runner(ctx), 1, "not found", "approve", "00000000-0000-4000-8000-000000000000")
}

func TestRejectEndsAWaitingRun(t *testing.T) {
	t.Parallel()
	c, ctx := daemonEnv(t, "ship", noopTemplate)
	f := followSubmit(t, c.runner(ctx), "waiting for approval", "--kind", "deploy", "--env", "prod", "--template", "ship")
	wantExit(t, c.runner(ctx), 2, "--reason is required", "reject", f.id)

	var out syncBuffer
	code, stderr := c.run(ctx, &out, "reject", "--as", "bob", "--reason", "freeze until Monday", f.id)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "rejected run "+f.id+" as operator:bob: freeze until Monday\n", out.String())
	assert.Equal(t, exitRunCanceled, f.exitCode(t), f.out.String())
	assert.Contains(t, f.out.String(), "rejected by operator:bob: freeze until Monday")
	run, err := c.store.GetRun(ctx, f.id)
	require.NoError(t, err)
	assert.Equal(t, executor.StatusCanceled, run.Status)
	assert.Equal(t, "rejected by operator:bob: freeze until Monday", *run.ErrorMessage)
	assert.Equal(t, "operator:bob", *run.RejectedBy)
}

func TestApproversCommands(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t)
	ctx := testContext(t)
	const alice = "5b0c2f3e-8a61-4d7e-9f43-2a1c6b7d8e90"
	wantExit(t, c.runner(ctx), 2, `user id "alice" is not a UUID`, "approvers", "add", "alice")
	var out syncBuffer
	code, stderr := c.run(ctx, &out, "approvers", "add", alice, "--name", "Alice (SRE)")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "approver "+alice+" added\n", out.String())
	out = syncBuffer{}
	code, stderr = c.run(ctx, &out, "approvers", "list")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `(?m)^USER_ID\s+NAME\s+ADDED_BY\s+ADDED_AT\n`+alice+`\s+Alice \(SRE\)\s+\S+\s+\d{4}-`, out.String())
	code, stderr = c.run(ctx, nil, "approvers", "rm", alice)
	require.Equal(t, 0, code, stderr)
	wantExit(t, c.runner(ctx), 1, "is not an approver", "approvers", "rm", alice)
	var n int
	require.NoError(t, c.db.Pool.QueryRow(ctx, `SELECT count(*) FROM approvers`).Scan(&n))
	assert.Zero(t, n)
}

func TestSubmitValidatesLocally(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t)
	c.template("needs-input", inputTemplate)
	ctx := testContext(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no kind", []string{"--env", "dev"}, "--kind and --env are required"},
		{"bad kind", []string{"--kind", "build", "--env", "dev"}, `--kind "build": must be one of deploy, healthcheck, spec, incident, schema_sync`},
		{"bad env", []string{"--kind", "deploy", "--env", "production"}, `--env "production": must be one of prod, staging, dev`},
		{"unknown lane", []string{"--kind", "deploy", "--env", "dev", "--lane", "E"}, `--lane "E": not one of the configured lanes A,B,C,D`},
		{"bad session", []string{"--kind", "deploy", "--env", "dev", "--session", "s1"}, `--session "s1": must be a session id`},
		{"bad input", []string{"--kind", "deploy", "--env", "dev", "--input", "9lives"}, `--input "9lives": must be KEY=VALUE`},
		{"twice", []string{"--kind", "deploy", "--env", "dev", "--input", "a=1", "--input", "a=2"}, "--input a given twice"},
		{"unknown template", []string{"--kind", "deploy", "--env", "dev", "--template", "nope"}, `--template "nope": no run template has this slug or id`},
		{"missing input", []string{"--kind", "deploy", "--env", "dev", "--template", "needs-input"}, `input "project" (Vercel project) is required`},
		{"unknown flag", []string{"--kind", "deploy", "--env", "dev", "--colour"}, "unknown flag: --colour"},
	}
	for _, tc := range cases {
		wantExit(t, c.runner(ctx), 2, tc.want, append([]string{"submit"}, tc.args...)...)
	}
	runs, err := c.store.ListRuns(ctx, executor.RunFilter{})
	require.NoError(t, err)
	assert.Empty(t, runs, "nothing is queued when validation fails")

	// The same template with its input is queued, with template_id and input set.
	var out syncBuffer
	code, stderr := c.run(ctx, &out, "submit", "--kind", "deploy", "--env", "dev", "--template", "needs-input", "--input", "project=web", "--dry-run")
	require.Equal(t, 0, code, stderr)
	run, err := c.store.GetRun(ctx, firstLine(out.String()))
	require.NoError(t, err)
	assert.Equal(t, executor.StatusQueued, run.Status)
	assert.NotNil(t, run.TemplateID)
	assert.True(t, run.DryRun)
	assert.JSONEq(t, `{"project":"web"}`, string(run.Input))
}

func TestTailJSONAndArtifacts(t *testing.T) {
	t.Parallel()
	c, ctx := daemonEnv(t, "noop", noopTemplate)

	var out syncBuffer
	code, stderr := c.run(ctx, &out, "submit", "--kind", "spec", "--env", "dev", "--template", "noop", "--follow")
	require.Equal(t, 0, code, stderr)
	id := firstLine(out.String())
	// The run is finished, so its artifacts are added the way only the
	// database's own functions may: with the row fence lifted.
	tx, err := c.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT public.opsd_fenced_write(true)`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO artifacts (run_id, kind, title, value) VALUES
		($1, 'link', 'Deployment', 'https://example.test/d/1'), ($1, 'file', 'report.md', E'# Report\nall good\n')`, id)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	out = syncBuffer{}
	code, stderr = c.run(ctx, &out, "tail", id, "--json")
	require.Equal(t, 0, code, stderr)
	var types []string
	lastSeq := 0
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var line struct {
			Type   string `json:"type"`
			Seq    int    `json:"seq"`
			Status string `json:"status"`
			Title  string `json:"title"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		if line.Type == "event" {
			assert.Equal(t, lastSeq+1, line.Seq, "events come in seq order without gaps")
			lastSeq = line.Seq
		}
		if len(types) == 0 || types[len(types)-1] != line.Type {
			types = append(types, line.Type)
		}
		if line.Type == "run" {
			assert.Equal(t, "success", line.Status)
		}
	}
	assert.Equal(t, []string{"event", "artifact", "run"}, types)

	out = syncBuffer{}
	code, _ = c.run(ctx, &out, "tail", id)
	require.Equal(t, 0, code)
	assert.Contains(t, out.String(), "artifacts:\n  link  Deployment: https://example.test/d/1\n  file  report.md (18 bytes)\n        # Report\n        all good\n")
	assert.NotContains(t, out.String(), "\x1b[", "no colour when stdout is not a terminal")

	wantExit(t, c.runner(ctx), 2, `"not-a-run" is not a run id`, "tail", "not-a-run")
	wantExit(t, c.runner(ctx), 1, "not found", "tail", "00000000-0000-4000-8000-000000000000")
}

func TestStatus(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t)
	d := c.startDaemon()
	c.template("slow", slowTemplate)
	c.template("broken", failingTemplate)
	ctx := testContext(t)

	code, stderr := c.run(ctx, nil, "submit", "--kind", "healthcheck", "--env", "dev", "--template", "broken", "--follow")
	require.Equal(t, 1, code, stderr)
	var out syncBuffer
	code, stderr = c.run(ctx, &out, "submit", "--kind", "incident", "--env", "dev", "--lane", "C", "--template", "slow")
	require.Equal(t, 0, code, stderr)
	slow := firstLine(out.String())
	waitFor(t, 30*time.Second, "the slow run to reach its action phase", func() bool {
		r, err := c.store.GetRun(ctx, slow)
		return err == nil && r.Phase != nil && *r.Phase == executor.PhaseAction
	})

	out = syncBuffer{}
	code, stderr = c.run(ctx, &out, "status", "--json")
	require.Equal(t, 0, code, stderr)
	var rep statusReport
	require.NoError(t, json.Unmarshal([]byte(out.String()), &rep))
	assert.Equal(t, []executor.LaneCount{{Lane: "A"}, {Lane: "B"}, {Lane: "C", Running: 1}, {Lane: "D"}}, rep.Lanes)
	require.Len(t, rep.InFlight, 1)
	f := rep.InFlight[0]
	assert.Equal(t, slow, f.ID)
	assert.Equal(t, d.WorkerID(), f.Worker)
	assert.Equal(t, "action", f.Phase)
	require.NotNil(t, f.HeartbeatAge)
	assert.Less(t, *f.HeartbeatAge, 10.0)
	require.Len(t, rep.RecentFailures, 1)
	assert.Contains(t, rep.RecentFailures[0].ErrorMessage, "validate failed")

	out = syncBuffer{}
	code, _ = c.run(ctx, &out, "status")
	require.Equal(t, 0, code)
	text := out.String()
	assert.Regexp(t, `(?m)^C\s+0\s+1$`, text)
	assert.Regexp(t, `(?m)^`+slow+`\s+C\s+incident\s+dev\s+`+d.WorkerID()+`\s+action\s+[0-9.]+m?s ago$`, text)
	assert.Contains(t, text, "RECENT FAILURES (1)")
	assert.Contains(t, text, "validate failed")

	code, _ = c.run(ctx, nil, "cancel", slow)
	require.Equal(t, 0, code)
}

func TestOperatorCommandsNeedAStore(t *testing.T) {
	// No --database-url and an empty environment select no store.
	t.Setenv("DATABASE_URL", "")
	t.Setenv("SUPABASE_URL", "")
	for _, args := range [][]string{{"status"}, {"tail", "00000000-0000-4000-8000-000000000000"}, {"submit", "--kind", "spec", "--env", "dev"}} {
		wantExit(t, func(out *syncBuffer, args ...string) (int, string) {
			return runCLI(context.Background(), out, args...)
		}, 2, "no store configured", args...)
	}
}

// renderer details that the end-to-end tests do not see.
func TestRendererColoursLevelsAndPrettyPrintsData(t *testing.T) {
	var out syncBuffer
	r := &renderer{w: &out, color: true, prefix: "[x] "}
	r.event(executor.Event{Seq: 1, TS: time.Now(), Level: "warn", Source: "Vercel", Phase: "action",
		Message: "slow build", Data: json.RawMessage(`{"seconds":42}`)})
	r.event(executor.Event{Seq: 2, TS: time.Now(), Level: "info", Source: "System", Message: "no data", Data: json.RawMessage(`{}`)})
	s := out.String()
	assert.Contains(t, s, "[x] \x1b[33m[WARN   ]\x1b[0m Vercel")
	assert.Contains(t, s, "action    slow build\n[x]     \x1b[2m{\x1b[0m\n[x]     \x1b[2m  \"seconds\": 42\x1b[0m\n")
	assert.Equal(t, 5, strings.Count(s, "\n"), "one line per event, three for the data; empty data prints nothing")
}

// TestOperatorCommandsOverREST drives the same commands through PostgREST
// with the service-role key.
func TestOperatorCommandsOverREST(t *testing.T) {
	t.Parallel()
	c, ctx := daemonEnv(t, "ship", noopTemplate)
	srv := postgresttest.New(t, c.db.URL, "operator-rest-test-jwt-secret-32-bytes!")
	rest := func(out *syncBuffer, args ...string) (int, string) {
		return runCLI(ctx, out, append(args, "--database-url=", "--supabase-url", srv.URL,
			"--supabase-service-role-key", srv.ServiceKey(), "--log-level", "warn")...)
	}

	f := followSubmit(t, rest, "waiting for approval", "--kind", "deploy", "--env", "prod", "--template", "ship")
	id := f.id

	var status syncBuffer
	code, stderr := rest(&status, "status")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `(?m)^`+id+`\s+A\s+deploy\s+prod\s+\S+\s+approval\s`, status.String())

	code, stderr = rest(nil, "approve", id)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, 0, f.exitCode(t), f.out.String())
	run, err := c.store.GetRun(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "operator:"+defaultApprover(), *run.ApprovedBy)

	wantExit(t, rest, 1, "already finished (success)", "cancel", id)
}
