package runbooks

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
	"github.com/opscontrolroom/opsd/adapters/vercel/verceltest"
)

// breakThings makes prod fail: the latest production deployment errored
// with a build log, and CI fails on main.
func breakThings(w *world) {
	now := time.Now()
	var events []verceltest.Event
	for i := range 30 {
		events = append(events, verceltest.Event{Type: "stdout", Text: "step " + string(rune('a'+i%26)), Created: now})
	}
	events = append(events, verceltest.Event{Type: "stderr", Text: "TypeError: cannot read properties of undefined (reading 'id')", Created: now})
	w.vercel.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: w.project.ID, Target: "production", State: "ERROR",
		ErrorCode: "BUILD_FAILED", ErrorMessage: "Command \"npm run build\" exited with 1", Events: events,
		Meta: map[string]string{"githubCommitRef": "main", "githubCommitSha": w.mainSHA}})
	w.gh.AddRun(testRepo, githubtest.Run{Workflow: "ci.yml", Branch: "main", Conclusion: "failure", CreatedAt: now.Add(time.Minute)})
}

func noIssue(w *world, id string) {
	require.Empty(w.t, w.gh.Issues(testRepo), "no issue may be opened")
}

func TestIncident(t *testing.T) {
	t.Parallel()
	run := runSpec{kind: "incident", env: "prod", intent: "checkout is broken", input: `{"notes":"users see a blank page"}`}
	scenarios := []scenario{
		{
			name: "success", run: run, status: "success", setup: breakThings,
			check: func(w *world, id string) {
				issues := w.gh.Issues(testRepo)
				require.Len(w.t, issues, 1)
				is := issues[0]
				require.Contains(w.t, is.Title, "[prod] Incident: Vercel deployment")
				require.Contains(w.t, is.Labels, "incident")
				var fp string
				for _, l := range is.Labels {
					if strings.HasPrefix(l, fingerprintPrefix) {
						fp = l
					}
				}
				require.Len(w.t, fp, len(fingerprintPrefix)+12)
				require.Contains(w.t, is.Body, "<!-- "+fp+" -->")
				require.Contains(w.t, is.Body, "workflow CI failure on main")
				require.Contains(w.t, is.Body, "TypeError: cannot read properties")
				require.Contains(w.t, is.Body, "users see a blank page")

				link, ok := w.artifact(id, "link", "Incident issue #")
				require.True(w.t, ok)
				require.Equal(w.t, is.URL, link.Value)
				_, ok = w.artifact(id, "file", "Triage report")
				require.True(w.t, ok)
				logs, ok := w.artifact(id, "file", "Log excerpts (redacted)")
				require.True(w.t, ok)
				require.Contains(w.t, logs.Value, "TypeError")
				coalesced := false
				for _, e := range w.events(id) {
					if e.Source == "Vercel" && strings.Count(e.Message, "\n") > 3 {
						coalesced = true
					}
				}
				require.True(w.t, coalesced, "build log lines are coalesced into few rows")
			},
		},
		{
			name: "nothing_failing_still_records", run: run, status: "success",
			check: func(w *world, id string) {
				issues := w.gh.Issues(testRepo)
				require.Len(w.t, issues, 1)
				require.Contains(w.t, issues[0].Body, "Nothing failing was found automatically")
				require.True(w.t, w.hasEvent(id, "triage found nothing failing"))
			},
		},
		{
			name: "validation_failure", status: "error", msg: `input "repo" must be a GitHub repository`,
			run: runSpec{kind: "incident", env: "prod", input: `{"repo":"acme","branch":"../etc"}`},
			check: func(w *world, id string) {
				_, msg := w.finish(id)
				require.Contains(w.t, msg, `input "branch" must be a branch, tag or commit`)
				require.Empty(w.t, w.gh.Requests())
			},
		},
		{
			name: "preflight_failure_repo_unreachable", status: "error", msg: "repository acme/nope is not reachable",
			run: runSpec{kind: "incident", env: "prod", input: `{"repo":"acme/nope"}`}, check: noIssue,
			setup: func(w *world) {
				w.deps.Policy.Envs = map[string]Allowlist{"prod": {GitHubRepos: []string{"acme/nope"}}}
			},
		},
		{
			name: "preflight_failure_not_configured", status: "error", msg: "GitHub is not configured: set GITHUB_TOKEN",
			run: run, setup: func(w *world) { w.deps.Integrations.GitHub.Token = "" },
		},
		{
			name: "action_failure", run: run, status: "error", msg: "open issue in acme/web",
			setup: func(w *world) {
				breakThings(w)
				w.gh.Fail(githubtest.Failure{Method: "POST", Path: "/repos/acme/web/issues", Status: 410, Message: "Issues are disabled for this repo"})
			},
			check: noIssue,
		},
		{
			name: "verify_failure", run: run, status: "error", msg: "verify failed",
			setup: func(w *world) {
				breakThings(w)
				// The action's lookup answers; every later one fails.
				w.gh.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/web/issues", Delay: time.Millisecond})
				w.gh.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/web/issues", Status: 502, Times: -1})
			},
			check: func(w *world, id string) { require.Len(w.t, w.gh.Issues(testRepo), 1) },
		},
		{
			name: "cancel_during_action", run: run, status: "canceled", msg: "canceled by operator during action",
			setup: func(w *world) {
				breakThings(w)
				w.gh.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/web/issues", Delay: time.Minute, Status: 500})
			},
			during: cancelInAction, check: noIssue,
		},
		{
			name: "dry_run", status: "success", setup: breakThings,
			run: runSpec{kind: "incident", env: "prod", intent: "checkout is broken", dryRun: true},
			check: func(w *world, id string) {
				noIssue(w, id)
				dryRunSkipped(w, id, "open an issue in acme/web with the triage report, or comment on the open issue labelled opsd-fingerprint:")
				r, ok := w.artifact(id, "file", "Triage report")
				require.True(w.t, ok)
				require.Contains(w.t, r.Value, "BUILD_FAILED")
			},
		},
	}
	blocked := run
	blocked.plan = blockPlan
	scenarios = append(scenarios, approvalScenarios(blocked, func(w *world, id string) {
		require.Len(w.t, w.gh.Issues(testRepo), 1)
	}, noIssue)...)
	runScenarios(t, scenarios)
}

// TestIncidentSameFingerprintComments: a second run for the same failure
// comments on the open issue instead of opening another.
func TestIncidentSameFingerprintComments(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	breakThings(w)
	w.start()
	run := runSpec{kind: "incident", env: "prod", intent: "checkout is broken"}
	first := w.submit(run)
	w.expect(first, "success", "")
	second := w.submit(run)
	w.expect(second, "success", "")
	issues := w.gh.Issues(testRepo)
	require.Len(w.t, issues, 1)
	comments := w.gh.Comments(testRepo, issues[0].Number)
	require.Len(w.t, comments, 1)
	require.Contains(w.t, comments[0], "Incident triage (prod)")
	require.True(w.t, w.hasEvent(second, "commented on open issue #"))
	_, ok := w.artifact(second, "link", "Triage comment")
	require.True(w.t, ok)
}
