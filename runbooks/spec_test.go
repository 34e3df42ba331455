package runbooks

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
)

type specDoc struct{ slug, title, content string }

func specDocs(w *world) []specDoc {
	w.t.Helper()
	rows, err := w.db.Pool.Query(context.Background(), `SELECT slug, title, content FROM spec_docs ORDER BY slug`)
	require.NoError(w.t, err)
	defer rows.Close()
	var out []specDoc
	for rows.Next() {
		var d specDoc
		require.NoError(w.t, rows.Scan(&d.slug, &d.title, &d.content))
		out = append(out, d)
	}
	require.NoError(w.t, rows.Err())
	return out
}

func noSpecWritten(w *world, id string) {
	require.Empty(w.t, specDocs(w), "no spec_docs row may be written")
	require.Empty(w.t, w.gh.PullRequests(testRepo), "no pull request may be opened")
}

func TestSpec(t *testing.T) {
	t.Parallel()
	run := runSpec{kind: "spec", env: "dev", intent: "Add a billing page",
		input: `{"target":"billing","notes":"- Stripe checkout\n- invoices page"}`}
	scenarios := []scenario{
		{
			name: "success", run: run, status: "success",
			check: func(w *world, id string) {
				docs := specDocs(w)
				require.Len(w.t, docs, 4)
				want := map[string]string{"billing/constitution": "constitution.md", "billing/plan": "plan.md", "billing/prd": "prd.md", "billing/tasks": "tasks.md"}
				for _, d := range docs {
					require.Equal(w.t, want[d.slug], d.title, d.slug)
					require.Contains(w.t, d.content, "billing")
				}
				require.Contains(w.t, docs[2].content, "Add a billing page") // prd
				require.Contains(w.t, docs[2].content, "- Stripe checkout")
				require.Contains(w.t, docs[3].content, "- [ ] T010 Stripe checkout") // tasks
				require.Contains(w.t, docs[3].content, "- [ ] T011 invoices page")

				prs := w.gh.PullRequests(testRepo)
				require.Len(w.t, prs, 1)
				require.Equal(w.t, "main", prs[0].Base)
				require.Equal(w.t, "opsd/spec-billing-"+shortID(id), prs[0].Head)
				require.Contains(w.t, prs[0].Title, "Spec Kit for billing: Add a billing page")
				commit, ok := w.gh.Commit(testRepo, prs[0].HeadSHA)
				require.True(w.t, ok)
				require.Equal(w.t, docs[2].content, commit.Files["specs/billing/prd.md"])
				require.Contains(w.t, commit.Files, "specs/billing/tasks.md")

				link, ok := w.artifact(id, "link", "Spec pull request")
				require.True(w.t, ok)
				require.Equal(w.t, prs[0].URL, link.Value)
				diff, ok := w.artifact(id, "diff", "Spec Kit files")
				require.True(w.t, ok)
				require.Contains(w.t, diff.Value, "+++ b/specs/billing/prd.md")
				require.Contains(w.t, diff.Value, "+# billing: product requirements")
			},
		},
		{
			name: "target_defaults_to_repo_name", status: "success",
			run: runSpec{kind: "spec", env: "dev", input: `{"notes":"only notes, no intent"}`},
			check: func(w *world, id string) {
				require.Len(w.t, specDocs(w), 4)
				require.Equal(w.t, "web/constitution", specDocs(w)[0].slug)
			},
		},
		{
			name: "validation_failure", status: "error", msg: `the run's intent (runs.intent) or input "notes" must say what to specify`,
			run: runSpec{kind: "spec", env: "dev", input: `{"target":"bad slug!"}`},
			check: func(w *world, id string) {
				_, msg := w.finish(id)
				require.Contains(w.t, msg, `input "target" must be 1-64 letters`)
				require.Empty(w.t, w.gh.Requests())
			},
		},
		{
			name: "preflight_failure_missing_base", status: "error", msg: `base branch "nope" does not exist in acme/web`,
			run: runSpec{kind: "spec", env: "dev", intent: "x", input: `{"branch":"nope"}`}, check: noSpecWritten,
		},
		{
			name: "preflight_failure_not_configured", status: "error", msg: "GitHub is not configured: set GITHUB_TOKEN",
			run: run, setup: func(w *world) { w.deps.Integrations.GitHub.Token = "" }, check: noSpecWritten,
		},
		{
			name: "action_failure", run: run, status: "error", msg: "open pull request",
			setup: func(w *world) {
				w.gh.Fail(githubtest.Failure{Method: "POST", Path: "/repos/acme/web/pulls", Status: 403, Message: "Resource not accessible by integration"})
			},
			check: func(w *world, id string) {
				require.Len(w.t, specDocs(w), 4, "spec_docs are saved before the pull request")
				require.True(w.t, w.hasEvent(id, "committed 4 files"))
			},
		},
		{
			name: "verify_failure", run: run, status: "error", msg: "verify failed: branch opsd/spec-billing-",
			setup: func(w *world) {
				w.gh.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/web/commits/opsd/", Status: 404, Times: -1})
			},
			check: func(w *world, id string) { require.Len(w.t, w.gh.PullRequests(testRepo), 1) },
		},
		{
			name: "cancel_during_action", run: run, status: "canceled", msg: "canceled by operator during action",
			setup: func(w *world) {
				// A GET: githubtest does not read a POST's body before its
				// delay, so the server would not notice the client going away.
				w.gh.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/web/git/ref/", Delay: time.Minute, Status: 500})
			},
			// The cancel lands once the pull request step is running: a
			// cancel that lands while spec_docs are saved would leave no
			// pull_request step to check.
			during: func(w *world, id string) {
				w.waitStep(id, "pull_request", "running")
				w.cancel(id)
			},
			check: func(w *world, id string) {
				require.Empty(w.t, w.gh.PullRequests(testRepo))
				var status string
				require.NoError(w.t, w.db.Pool.QueryRow(w.t.Context(),
					`SELECT status::text FROM run_steps WHERE run_id = $1 AND step_id = 'pull_request'`, id).Scan(&status))
				require.Equal(w.t, "canceled", status)
			},
		},
		{
			name: "dry_run", status: "success",
			run: runSpec{kind: "spec", env: "dev", intent: "Add a billing page", input: `{"target":"billing"}`, dryRun: true},
			check: func(w *world, id string) {
				noSpecWritten(w, id)
				dryRunSkipped(w, id, "upsert spec_docs billing/constitution, billing/prd, billing/plan, billing/tasks and open a pull request in acme/web")
				_, ok := w.artifact(id, "diff", "Spec Kit files (dry run: not committed)")
				require.True(w.t, ok)
			},
		},
	}
	blocked := run
	blocked.plan = blockPlan
	scenarios = append(scenarios, approvalScenarios(blocked, func(w *world, id string) {
		require.Len(w.t, w.gh.PullRequests(testRepo), 1)
	}, noSpecWritten)...)
	runScenarios(t, scenarios)
}
