package runbooks

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// untouchedIntegrations: validate refused the run before any adapter call.
func untouchedIntegrations(w *world, id string) {
	require.Empty(w.t, w.vercel.Requests(), "no request may reach Vercel")
	require.Empty(w.t, w.gh.Requests(), "no request may reach GitHub")
}

// systemError says the run's refusal is in a System error event.
func systemError(w *world, id, substr string) {
	for _, e := range w.events(id) {
		if e.Source == "System" && e.Level == executor.LevelError && strings.Contains(e.Message, substr) {
			return
		}
	}
	w.dump(id)
	w.t.Fatalf("run %s has no System error event containing %q", id, substr)
}

// heldThenCanceled waits for the run to wait for approval with a reason,
// checks nothing acted, then cancels it.
func heldThenCanceled(reason string, untouched func(w *world, id string)) func(w *world, id string) {
	return func(w *world, id string) {
		w.waitPhase(id, "approval")
		w.waitEvent(id, reason)
		untouched(w, id)
		w.cancel(id)
	}
}

// nothingActed: no workflow was dispatched and no deployment created.
func nothingActed(w *world, id string) {
	require.Empty(w.t, w.gh.Dispatches(testRepo), "no workflow may be dispatched")
	noDeployment(w, id)
}

func allowCrossEnv(w *world) {
	w.cfg.Policy = &executor.Policy{ApprovalEnvs: []string{"prod"}, AllowCrossEnv: true}
}

// The attack of issue 11: a browser holding only the anon key inserts a dev
// run aimed at Vercel production.
const anonAttack = `{"project":"web","target":"production","repo":"acme/web","branch":"main"}`

func TestPolicyTargets(t *testing.T) {
	t.Parallel()
	runScenarios(t, []scenario{
		{
			name: "dev_run_aimed_at_production_refused", status: "error",
			run: runSpec{kind: "deploy", env: "dev", input: anonAttack},
			msg: `the run's env is dev but it would write to another env's target: Vercel target production (input "target") belongs to env prod`,
			check: func(w *world, id string) {
				untouchedIntegrations(w, id)
				systemError(w, id, "set policy.allow_cross_env: true")
			},
		},
		{
			name: "dev_run_aimed_at_production_refused_from_the_plan", status: "error",
			run: runSpec{kind: "deploy", env: "dev",
				plan: `{"id":"p","kind":"deploy","title":"t","summary":"s","inputs":[{"key":"target","value":"production"}],"risks":[],"integrations":[]}`},
			msg: "the run's env is dev but it would write to another env's target: Vercel target production", check: untouchedIntegrations,
		},
		{
			name: "cross_env_allowed_still_needs_approval", status: "canceled", setup: allowCrossEnv,
			run:    runSpec{kind: "deploy", env: "dev", input: anonAttack},
			during: heldThenCanceled(`it writes to production: Vercel target production (input "target")`, func(w *world, id string) { noDeployment(w, id) }),
			check:  noDeployment,
		},
		{
			name: "dev_run_using_a_prod_project_refused", status: "error",
			setup: func(w *world) {
				w.deps.Integrations.Vercel.Projects = map[string]string{"prod": "web", "dev": "web-dev"}
				w.deps.Policy.Envs = map[string]Allowlist{"dev": {VercelProjects: []string{"web"}}}
			},
			run: runSpec{kind: "deploy", env: "dev", input: `{"project":"web","target":"preview","branch":"main"}`},
			msg: `the run's env is dev but it would write to another env's target: Vercel project web (input "project") belongs to env prod`, check: untouchedIntegrations,
		},
		{
			name: "unlisted_project_refused", status: "error",
			run: runSpec{kind: "deploy", env: "dev", input: `{"project":"billing","branch":"main"}`},
			msg: `input "project" = "billing" is not allowed for env dev: add it to policy.envs.dev.vercel_projects`, check: untouchedIntegrations,
		},
		{
			name: "unlisted_repo_refused", status: "error",
			run: runSpec{kind: "spec", env: "dev", intent: "x", input: `{"repo":"evil/repo"}`},
			msg: `input "repo" = "evil/repo" is not allowed for env dev: add it to policy.envs.dev.github_repos`,
			check: func(w *world, id string) {
				untouchedIntegrations(w, id)
				systemError(w, id, "policy.envs.dev.github_repos")
			},
		},
		{
			name: "unlisted_database_refused", status: "error",
			run: runSpec{kind: "schema_sync", env: "staging", input: `{"target":"prod"}`},
			msg: `input "target" = "prod" is not allowed for env staging: add it to policy.envs.staging.databases`,
		},
		{
			name: "listed_repo_passes", status: "success",
			setup: func(w *world) {
				w.gh.AddRepo("acme/docs", "main")
				w.deps.Policy.Envs = map[string]Allowlist{"dev": {GitHubRepos: []string{"acme/docs"}}}
			},
			run: runSpec{kind: "spec", env: "dev", intent: "Add a billing page", input: `{"repo":"acme/docs","target":"billing"}`},
			check: func(w *world, id string) {
				require.Len(w.t, w.gh.PullRequests("acme/docs"), 1)
				require.True(w.t, w.hasEvent(id, `targets: GitHub repository acme/docs (input "repo") [write]`))
			},
		},
		{
			name: "prod_marked_repo_waits_for_approval", status: "canceled",
			setup: func(w *world) { w.deps.Policy.Production.GitHubRepos = []string{testRepo} },
			run:   runSpec{kind: "spec", env: "prod", intent: "Add a billing page", input: `{"target":"billing"}`},
			during: heldThenCanceled("it writes to production: GitHub repository acme/web", func(w *world, id string) {
				require.Empty(w.t, w.gh.PullRequests(testRepo))
			}),
			check: noSpecWritten,
		},
		{
			name: "prod_marked_repo_refused_to_a_dev_run", status: "error",
			setup: func(w *world) { w.deps.Policy.Production.GitHubRepos = []string{testRepo} },
			run:   runSpec{kind: "spec", env: "dev", intent: "Add a billing page", input: `{"target":"billing"}`},
			msg:   "the run's env is dev but it would write to another env's target: GitHub repository acme/web belongs to env prod", check: untouchedIntegrations,
		},
		{
			name: "linked_repo_unlisted_refused_in_preflight", status: "error",
			setup: func(w *world) { w.deps.Integrations.GitHub.Repo = "" },
			run:   runSpec{kind: "deploy", env: "dev", input: `{"branch":"main","runMigrations":true,"target":"preview"}`},
			msg:   `the Git link of Vercel project web = "acme/web" is not allowed for env dev: add it to policy.envs.dev.github_repos`,
			check: nothingActed,
		},
		{
			name: "linked_prod_repo_written_by_a_dev_run_refused_before_action", status: "error",
			setup: func(w *world) {
				w.deps.Integrations.GitHub.Repo = ""
				w.deps.Policy.Envs = map[string]Allowlist{"dev": {GitHubRepos: []string{testRepo}}}
				w.deps.Policy.Production.GitHubRepos = []string{testRepo}
			},
			run: runSpec{kind: "deploy", env: "dev", input: `{"branch":"main","runMigrations":true,"target":"preview"}`},
			msg: "preflight failed: invalid run: the run's env is dev but it would write to another env's target: " +
				"GitHub repository acme/web (the Git link of Vercel project web) belongs to env prod",
			check: nothingActed,
		},
		{
			// Reading is governed by the allowlist alone: a dev healthcheck
			// of a production-marked repository needs no approval.
			name: "prod_marked_repo_read_by_a_dev_run", status: "success",
			setup: func(w *world) { w.deps.Policy.Production.GitHubRepos = []string{testRepo} },
			run:   runSpec{kind: "healthcheck", env: "dev"},
		},
	})
}

const shipTemplate = `version: 1
inputs:
  - {key: target, type: string, required: true}
steps:
  - {id: ship, kind: tool, tool: vercel, action: deploy, args: {project: web, ref: main, target: "{{inputs.target}}"}}
`

func (w *world) submitTemplateAs(env, kind, tplID, input string) string {
	w.t.Helper()
	var id string
	require.NoError(w.t, w.db.Pool.QueryRow(context.Background(),
		`INSERT INTO runs (env, kind, template_id, input) VALUES ($1, $2, $3, $4) RETURNING id`, env, kind, tplID, input).Scan(&id))
	return id
}

func TestPolicyTemplateTargets(t *testing.T) {
	t.Parallel()
	t.Run("production_tool_action_held", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.start()
		// kind healthcheck: the run's label alone would never need approval.
		id := w.submitTemplateAs("prod", "healthcheck", w.template("ship", shipTemplate), `{"target":"production"}`)
		heldThenCanceled(`it writes to production: Vercel target production (step ship args.target)`, func(w *world, id string) { noDeployment(w, id) })(w, id)
		w.expect(id, "canceled", "")
		noDeployment(w, id)
	})
	t.Run("dev_tool_action_aimed_at_production_refused", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.start()
		id := w.submitTemplateAs("dev", "healthcheck", w.template("ship", shipTemplate), `{"target":"production"}`)
		w.expect(id, "error", "the run's env is dev but it would write to another env's target: Vercel target production (step ship args.target) belongs to env prod")
		untouchedIntegrations(w, id)
	})
	t.Run("unlisted_tool_target_refused", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.start()
		tpl := w.template("ci", "version: 1\nsteps:\n  - {id: ci, kind: tool, tool: github, action: ci, args: {repo: evil/repo, ref: main}}\n")
		id := w.submitTemplateAs("staging", "healthcheck", tpl, `{}`)
		w.expect(id, "error", `step ci args.repo = "evil/repo" is not allowed for env staging: add it to policy.envs.staging.github_repos`)
		untouchedIntegrations(w, id)
	})
	t.Run("preview_tool_action_runs", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.start()
		id := w.submitTemplateAs("dev", "healthcheck", w.template("ship", shipTemplate), `{"target":"preview"}`)
		w.expect(id, "success", "")
		require.Equal(t, 1, deployCreates(w))
	})
}
