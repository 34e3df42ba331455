package runbooks

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters/digitalocean/dotest"
	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
	"github.com/opscontrolroom/opsd/adapters/vercel/verceltest"
	"github.com/opscontrolroom/opsd/internal/redact"
)

// TestNoSecretLeaks configures secrets (tokens, a key, a database
// password), plants them in fake responses, errors, build logs and in what
// operators type, runs every kind, and finds none in any row opsd writes
// (runs, run_events, artifacts, run_steps, spec_docs) nor in what it sent to
// GitHub (issues, comments, pull requests, commits).
func TestNoSecretLeaks(t *testing.T) {
	t.Parallel()
	const (
		vercelTok = "vrc-Q7x9K2mP4tLw8Zr1"
		githubTok = "gh-secret-N3v5B7c9D1f3H5j7"
		doTok     = "do-secret-A1s2D3f4G5h6J7k8"
		sbKey     = "sb-service-key-Z9x8C7v6B5n4M3"
		dbPass    = "pg-pass-W2e3R4t5Y6u7"
	)
	secrets := []string{vercelTok, githubTok, doTok, sbKey, dbPass}

	w := newWorld(t)
	w.vercel.Token, w.gh.Token, w.do.Token, w.sb.Key = vercelTok, githubTok, doTok, sbKey
	in := &w.deps.Integrations
	in.Vercel.Token, in.GitHub.Token, in.DigitalOcean.Token = vercelTok, githubTok, doTok
	for env, tgt := range in.Supabase {
		tgt.Key = sbKey
		in.Supabase[env] = tgt
	}
	schemaDBs(w)
	staging := in.Supabase["staging"]
	staging.DatabaseURL = "postgres://opsd:" + dbPass + "@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"
	in.Supabase["staging"] = staging
	r := redact.New(secrets...)
	w.cfg.Redactor, w.deps.Redactor = r, r

	// Planted: build logs that echo tokens, error messages that repeat
	// them, a health answer that is the key.
	var logs []verceltest.Event
	for _, s := range secrets {
		logs = append(logs, verceltest.Event{Type: "stdout", Text: "env dump: TOKEN=" + s, Created: time.Now()})
	}
	w.vercel.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: w.project.ID, Target: "production", State: "ERROR",
		ErrorCode: "BUILD_FAILED", ErrorMessage: "auth " + vercelTok + " expired", Events: logs})
	w.vercel.Fail(verceltest.Failure{Method: "POST", PathPrefix: "/v13/deployments", Status: 400, Message: "token " + vercelTok + " cannot deploy"})
	w.do.Fail(dotest.Failure{PathPrefix: "/v2/droplets", Status: 401, Message: "Unable to authenticate " + doTok, Times: 100})
	w.sb.SetPingAnswer(`"` + sbKey + `"`)
	w.gh.Fail(githubtest.Failure{Method: "POST", Path: "/repos/acme/web/pulls", Status: 422, Message: "bad credentials " + githubTok, Times: 1})
	w.start()

	typed := "rotate " + githubTok + " and " + doTok
	ids := map[string]string{
		"deploy":      w.submit(runSpec{kind: "deploy", env: "staging", intent: typed}),
		"healthcheck": w.submit(runSpec{kind: "healthcheck", env: "prod"}),
		"incident":    w.submit(runSpec{kind: "incident", env: "prod", intent: typed, input: `{"notes":"seen ` + sbKey + `"}`}),
		"schema_sync": w.submit(runSpec{kind: "schema_sync", env: "dev", input: `{"target":"staging"}`}),
	}
	// spec runs one after the other: the first meets the failing pull
	// request, the second opens it.
	ids["spec_failed"] = w.submit(runSpec{kind: "spec", env: "dev", intent: typed, input: `{"target":"one"}`})
	w.finish(ids["spec_failed"])
	ids["spec"] = w.submit(runSpec{kind: "spec", env: "dev", intent: typed, input: `{"target":"two","notes":"key ` + vercelTok + `"}`})
	want := map[string]string{"deploy": "error", "healthcheck": "error", "incident": "success", "schema_sync": "error", "spec_failed": "error", "spec": "success"}
	for kind, id := range ids {
		status, msg := w.finish(id)
		require.Equal(t, want[kind], status, "%s: %s", kind, msg)
	}

	// Every row opsd writes.
	rows, err := w.db.Pool.Query(context.Background(), `
		SELECT 'runs', coalesce(error_message, '') || ' ' || coalesce(output::text, '') || ' ' || coalesce(phase, '') FROM runs
		UNION ALL SELECT 'run_events', message || ' ' || source || ' ' || coalesce(data::text, '') FROM run_events
		UNION ALL SELECT 'artifacts', title || ' ' || value FROM artifacts
		UNION ALL SELECT 'run_steps', title || ' ' || step_id || ' ' || args::text || ' ' || coalesce(error, '') FROM run_steps
		UNION ALL SELECT 'spec_docs', slug || ' ' || title || ' ' || content FROM spec_docs`)
	require.NoError(t, err)
	// Collected first: an assertion must not leave the rows open (the
	// pool's cleanup would wait for them forever).
	texts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Table, Text string }])
	require.NoError(t, err)
	redacted := map[string]int{}
	n := len(texts)
	for _, row := range texts {
		for _, s := range secrets {
			require.NotContains(t, row.Text, s, "secret in %s", row.Table)
		}
		redacted[row.Table] += strings.Count(row.Text, redact.Marker)
	}
	require.Greater(t, n, 100)
	for _, table := range []string{"runs", "run_events", "artifacts", "spec_docs"} {
		require.Positive(t, redacted[table], "the planted secrets reached %s (and were redacted)", table)
	}

	// Everything sent to GitHub.
	var sent []string
	for _, is := range w.gh.Issues(testRepo) {
		sent = append(sent, is.Title, is.Body)
		sent = append(sent, w.gh.Comments(testRepo, is.Number)...)
	}
	require.NotEmpty(t, sent, "the incident opened an issue")
	for _, pr := range w.gh.PullRequests(testRepo) {
		sent = append(sent, pr.Title, pr.Body)
		c, ok := w.gh.Commit(testRepo, pr.HeadSHA)
		require.True(t, ok)
		sent = append(sent, c.Message)
		for _, f := range c.Files {
			sent = append(sent, f)
		}
	}
	all := strings.Join(sent, "\n")
	for _, s := range secrets {
		require.NotContains(t, all, s, "secret sent to GitHub")
	}
	require.Contains(t, all, redact.Marker)
}
