package runbooks

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
	"github.com/opscontrolroom/opsd/adapters/vercel/verceltest"
)

func deployCreates(w *world) int { return w.vercel.CountRequests("POST", "/v13/deployments") }

func noDeployment(w *world, id string) {
	require.Zero(w.t, deployCreates(w), "no deployment may be created")
}

func TestDeploy(t *testing.T) {
	t.Parallel()
	staging := runSpec{kind: "deploy", env: "staging", intent: "ship it", input: `{"branch":"main"}`}
	scenarios := []scenario{
		{
			name: "success", run: staging, status: "success",
			check: func(w *world, id string) {
				reqs := w.vercel.Requests()
				var body struct {
					Name, Project, Target string
					GitSource             struct{ Org, Repo, Ref, SHA string }
				}
				for _, r := range reqs {
					if r.Method == "POST" {
						require.NoError(w.t, json.Unmarshal(r.Body, &body))
					}
				}
				require.Equal(w.t, "web", body.Name)
				require.Equal(w.t, "staging", body.Target)
				require.Equal(w.t, "main", body.GitSource.Ref)
				require.Equal(w.t, w.mainSHA, body.GitSource.SHA)
				dep, ok := w.artifact(id, "link", "Deployment")
				require.True(w.t, ok)
				require.True(w.t, strings.HasPrefix(dep.Value, "https://web-"), dep.Value)
				_, ok = w.artifact(id, "link", "Vercel inspector")
				require.True(w.t, ok)
				require.True(w.t, w.hasEvent(id, "POST /v13/deployments -> 200"), "HTTP calls are events")
				require.True(w.t, w.hasEvent(id, "Supabase (staging) healthy"))
				require.True(w.t, w.hasEvent(id, "Next steps"))
				require.Zero(w.t, len(w.gh.Dispatches(testRepo)), "no migrations unless asked")
			},
		},
		{
			name: "success_with_migrations", status: "success",
			run: runSpec{kind: "deploy", env: "dev", input: `{"runMigrations":true,"target":"preview"}`},
			check: func(w *world, id string) {
				require.Len(w.t, w.gh.Dispatches(testRepo), 1)
				require.Equal(w.t, "migrate.yml", w.gh.Dispatches(testRepo)[0].Workflow)
				_, ok := w.artifact(id, "link", "Migrations workflow run")
				require.True(w.t, ok)
				require.Equal(w.t, 1, deployCreates(w))
			},
		},
		{
			name: "validation_failure", status: "error", msg: `input "repo" must be a GitHub repository`,
			run: runSpec{kind: "deploy", env: "dev", input: `{"repo":"not a repo","runMigrations":"maybe","target":"moon"}`},
			check: func(w *world, id string) {
				_, msg := w.finish(id)
				require.Contains(w.t, msg, `input "runMigrations" must be true or false, got text "maybe"`)
				require.Contains(w.t, msg, `input "target" must be production, staging or preview`)
				require.Empty(w.t, w.vercel.Requests(), "validation touches no integration")
				require.Empty(w.t, w.gh.Requests(), "validation touches no integration")
			},
		},
		{
			name: "preflight_failure_missing_ref", status: "error", msg: `ref "nope" does not exist in acme/web`,
			run: runSpec{kind: "deploy", env: "dev", input: `{"branch":"nope"}`}, check: noDeployment,
		},
		{
			name: "preflight_failure_ci_failing", status: "error", msg: "CI is failing on acme/web@main",
			run:   staging,
			setup: func(w *world) { w.gh.AddCheckRun(testRepo, w.mainSHA, "lint", "completed", "failure") }, check: noDeployment,
		},
		{
			name: "preflight_failure_not_configured", status: "error", msg: "Vercel is not configured: set VERCEL_TOKEN",
			run: staging, setup: func(w *world) { w.deps.Integrations.Vercel.Token = "" },
		},
		{
			name: "preflight_failure_supabase_down", status: "error", msg: "Supabase (staging) is unhealthy",
			run: staging, setup: func(w *world) { w.sb.SetDown("auth", 503) }, check: noDeployment,
		},
		{
			name: "action_failure", status: "error", msg: "action failed: create deployment web",
			run: staging,
			setup: func(w *world) {
				w.vercel.Fail(verceltest.Failure{Method: "POST", PathPrefix: "/v13/deployments", Status: 400, Code: "bad_request", Message: "Invalid gitSource"})
			},
		},
		{
			name: "action_failure_migrations", status: "error", msg: "concluded failure",
			run: runSpec{kind: "deploy", env: "dev", input: `{"runMigrations":"yes"}`},
			setup: func(w *world) {
				w.gh.AddWorkflow(testRepo, githubtest.Workflow{File: "migrate.yml", Conclusion: "failure"})
			},
			check: func(w *world, id string) {
				noDeployment(w, id)
				_, ok := w.artifact(id, "link", "Migrations workflow run (failed)")
				require.True(w.t, ok)
			},
		},
		{
			name: "verify_failure_build_error", status: "error", msg: "ended ERROR (BUILD_FAILED)",
			run: staging, setup: func(w *world) { w.vercel.SetBuildOutcome("ERROR") },
			check: func(w *world, id string) {
				log, ok := w.artifact(id, "file", "Vercel build log")
				require.True(w.t, ok)
				require.Contains(w.t, log.Value, `exited with 1`)
				require.Contains(w.t, log.Value, "Cloning github.com/acme/web")
				_, ok = w.artifact(id, "link", "Vercel inspector (failed deployment)")
				require.True(w.t, ok)
				var phase string
				for _, e := range w.events(id) {
					if strings.Contains(e.Message, "[stderr] Error") {
						phase = e.Phase
					}
				}
				require.Equal(w.t, "verify", phase, "the build log is chatty output of verify")
			},
		},
		{
			// GitHub rate-limits the wait for the migrations run twice, once
			// per documented kind; the deploy waits them out and goes on.
			name: "migrations_survive_rate_limits", status: "success",
			run: runSpec{kind: "deploy", env: "dev", input: `{"runMigrations":true}`},
			setup: func(w *world) {
				w.gh.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/web/actions/runs/", RateLimit: true, Reset: time.Second})
				w.gh.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/web/actions/runs/", Secondary: true, Status: 429, RetryAfter: time.Second})
			},
			check: func(w *world, id string) {
				require.Len(w.t, w.gh.Dispatches(testRepo), 1)
				require.Equal(w.t, 1, deployCreates(w), "the deployment followed the migrations")
				require.True(w.t, w.hasEvent(id, "-> 403"), "the primary limit was seen")
				require.True(w.t, w.hasEvent(id, "-> 429"), "the secondary limit was seen")
			},
		},
		{
			name: "verify_failure_blocked", status: "error", msg: "ended BLOCKED",
			run: staging, setup: func(w *world) { w.vercel.SetBuildOutcome("BLOCKED") },
			check: func(w *world, id string) {
				gets := 0
				for _, r := range w.vercel.Requests() {
					if r.Method == "GET" && strings.HasPrefix(r.Path, "/v13/deployments/") {
						gets++
					}
				}
				require.Equal(w.t, 2, gets, "BUILDING, then BLOCKED ends the wait on that poll")
			},
		},
		{
			name: "preflight_failure_missing_repo", status: "error", msg: "repository not found or not accessible with this token",
			run: runSpec{kind: "deploy", env: "dev", input: `{"repo":"acme/gone","branch":"main"}`},
			setup: func(w *world) {
				w.deps.Policy.Envs = map[string]Allowlist{"dev": {GitHubRepos: []string{"acme/gone"}}}
			},
			check: func(w *world, id string) {
				noDeployment(w, id)
				_, msg := w.finish(id)
				require.NotContains(w.t, msg, "does not exist", "a missing repository is not a missing ref")
				require.Contains(w.t, msg, "404")
			},
		},
		{
			name: "cancel_during_action", status: "canceled", msg: "canceled by operator during action",
			run: staging,
			setup: func(w *world) {
				w.vercel.Fail(verceltest.Failure{Method: "POST", PathPrefix: "/v13/deployments", Status: 500, Delay: time.Minute})
			},
			during: cancelInAction,
		},
		{
			name: "dry_run", status: "success",
			run: runSpec{kind: "deploy", env: "staging", input: `{"runMigrations":true}`, dryRun: true},
			check: func(w *world, id string) {
				noDeployment(w, id)
				require.Empty(w.t, w.gh.Dispatches(testRepo))
				dryRunSkipped(w, id, "dispatch workflow migrate.yml on acme/web@main and wait for it, then create a staging deployment of Vercel project web")
			},
		},
	}
	prod := runSpec{kind: "deploy", env: "prod", input: `{"branch":"main"}`}
	scenarios = append(scenarios, approvalScenarios(prod, func(w *world, id string) {
		require.Equal(w.t, 1, deployCreates(w))
		require.Contains(w.t, string(w.vercel.Requests()[len(w.vercel.Requests())-1].Path), "/v13/deployments")
	}, noDeployment)...)
	runScenarios(t, scenarios)
}
