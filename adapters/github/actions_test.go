package github_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
)

func TestDispatchAndWait(t *testing.T) {
	t.Parallel()
	for _, conclusion := range []string{"success", "failure", "cancelled"} {
		t.Run(conclusion, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t)
			srv.AddWorkflow(repo, githubtest.Workflow{File: "deploy.yml", Conclusion: conclusion, PollsPerState: 2})

			id, err := c.DispatchWorkflow(ctx(t), repo, "deploy.yml", "main", map[string]string{"env": "prod"})
			require.NoError(t, err)
			d := srv.Dispatches(repo)
			require.Len(t, d, 1)
			assert.Equal(t, id, d[0].RunID)
			assert.Equal(t, map[string]any{"env": "prod"}, d[0].Inputs)
			assert.Equal(t, "main", d[0].Ref)
			assert.Equal(t, 0, srv.CountRequests("GET", "/repos/acme/app/actions/workflows/deploy.yml/runs"),
				"the run id came with the dispatch answer")

			got, err := c.WaitForWorkflowRun(ctx(t), repo, id, time.Millisecond)
			require.NoError(t, err)
			assert.Equal(t, conclusion, got)
			// queued x2, in_progress x2, completed
			assert.Equal(t, 5, srv.CountRequests("GET", "/repos/acme/app/actions/runs/"+itoa(id)))
		})
	}
}

func TestDispatchFallsBackToListingRuns(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.SetReturnRunDetails(false) // GitHub Enterprise Server: 204, no body
	srv.AddWorkflow(repo, githubtest.Workflow{File: "deploy.yml", ListDelay: 2})
	older := srv.AddRun(repo, githubtest.Run{
		Workflow: "deploy.yml", Branch: "main", Event: "workflow_dispatch", CreatedAt: time.Now().Add(-time.Hour),
	})

	id, err := c.DispatchWorkflow(ctx(t), repo, "deploy.yml", "main", nil)
	require.NoError(t, err)
	d := srv.Dispatches(repo)
	require.Len(t, d, 1)
	assert.Equal(t, d[0].RunID, id)
	assert.NotEqual(t, older, id)
	assert.GreaterOrEqual(t, srv.CountRequests("GET", "/repos/acme/app/actions/workflows/deploy.yml/runs"), 3,
		"the run showed up on the third listing")
}

func TestDispatchFallbackGivesUp(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.SetReturnRunDetails(false)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "deploy.yml", ListDelay: 1 << 30})
	c.DispatchTimeout = 50 * time.Millisecond

	_, err := c.DispatchWorkflow(ctx(t), repo, "deploy.yml", "main", nil)
	require.ErrorIs(t, err, github.ErrRunNotFound)
}

func TestDispatchErrors(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "deploy.yml"})
	tests := []struct {
		name, file, ref string
		status          int
	}{
		{name: "unknown workflow", file: "nope.yml", ref: "main", status: 404},
		{name: "unknown ref", file: "deploy.yml", ref: "nope", status: 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.DispatchWorkflow(ctx(t), repo, tt.file, tt.ref, nil)
			var api *adapters.APIError
			require.ErrorAs(t, err, &api)
			assert.Equal(t, tt.status, api.Status)
			assert.Equal(t, "POST", api.Method)
			assert.Equal(t, "/repos/acme/app/actions/workflows/"+tt.file+"/dispatches", api.Path)
		})
	}
	_, err := c.DispatchWorkflow(ctx(t), repo, ".github/workflows/deploy.yml", "main", nil)
	require.Error(t, err, "a path is not a workflow file name")
}

func TestDispatchIsNotRetried(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "deploy.yml"})
	srv.Fail(githubtest.Failure{Method: "POST", Path: "/repos/acme/app/actions/workflows/deploy.yml/dispatches", Status: 502})

	_, err := c.DispatchWorkflow(ctx(t), repo, "deploy.yml", "main", nil)
	require.True(t, adapters.IsTemporary(err), "got %v", err)
	assert.Equal(t, 1, srv.CountRequests("POST", "/repos/acme/app/actions/workflows/deploy.yml/dispatches"))
}

func TestWaitForWorkflowRunHonoursContext(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "deploy.yml", PollsPerState: 1 << 30})
	id, err := c.DispatchWorkflow(ctx(t), repo, "deploy.yml", "main", nil)
	require.NoError(t, err)

	wctx, cancel := context.WithTimeout(ctx(t), 30*time.Millisecond)
	defer cancel()
	_, err = c.WaitForWorkflowRun(wctx, repo, id, time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestLatestWorkflowRun(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "ci.yml", Name: "CI"})
	now := time.Now().UTC().Truncate(time.Second)
	srv.AddRun(repo, githubtest.Run{Workflow: "ci.yml", Branch: "main", CreatedAt: now.Add(-2 * time.Hour)})
	latest := srv.AddRun(repo, githubtest.Run{Workflow: "ci.yml", Branch: "main", Conclusion: "failure", CreatedAt: now.Add(-time.Hour)})
	srv.AddRun(repo, githubtest.Run{Workflow: "ci.yml", Branch: "other", CreatedAt: now})

	got, err := c.LatestWorkflowRun(ctx(t), repo, "main")
	require.NoError(t, err)
	assert.Equal(t, latest, got.ID)
	assert.Equal(t, "CI", got.Name)
	assert.Equal(t, "failure", got.Conclusion)
	assert.True(t, got.Failed())
	assert.Equal(t, now.Add(-time.Hour), got.CreatedAt.UTC())

	_, err = c.LatestWorkflowRun(ctx(t), repo, "empty")
	require.ErrorIs(t, err, github.ErrNoWorkflowRuns)
}

func TestFailingWorkflowRuns(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	for _, f := range []string{"ci.yml", "e2e.yml", "lint.yml", "deploy.yml", "docs.yml"} {
		srv.AddWorkflow(repo, githubtest.Workflow{File: f})
	}
	base := time.Now().UTC().Truncate(time.Second).Add(-24 * time.Hour)
	add := func(file, conclusion string, minutes int) int64 {
		return srv.AddRun(repo, githubtest.Run{Workflow: file, Branch: "main", Conclusion: conclusion, CreatedAt: base.Add(time.Duration(minutes) * time.Minute)})
	}
	// docs.yml failed long ago, behind 150 newer runs: found on page 2.
	docs := add("docs.yml", "failure", 0)
	for i := range 150 {
		add("lint.yml", "success", 10+i)
	}
	add("ci.yml", "failure", 200)
	add("ci.yml", "success", 210) // fixed since: not failing
	e2e := add("e2e.yml", "timed_out", 220)
	deploy := add("deploy.yml", "failure", 230)
	srv.AddRun(repo, githubtest.Run{Workflow: "deploy.yml", Branch: "main", Status: "in_progress", CreatedAt: base.Add(240 * time.Minute)})

	got, err := c.FailingWorkflowRuns(ctx(t), repo, "main", 0)
	require.NoError(t, err)
	var ids []int64
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	assert.Equal(t, []int64{deploy, e2e, docs}, ids, "newest first, one per workflow")

	got, err = c.FailingWorkflowRuns(ctx(t), repo, "main", 2)
	require.NoError(t, err)
	assert.Len(t, got, 2)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
