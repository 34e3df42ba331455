package github_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
)

// The wait for a workflow run rides out each documented kind of rate limit
// and then sees the run complete.
func TestWaitForWorkflowRunSurvivesRateLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		failure githubtest.Failure
		minWait time.Duration
	}{
		// Primary: 403, x-ratelimit-remaining 0, wait until x-ratelimit-reset.
		{"primary 403 until reset", githubtest.Failure{RateLimit: true, Reset: time.Second}, 0},
		// Primary answered with 429 (GitHub documents both).
		{"primary 429 until reset", githubtest.Failure{RateLimit: true, Status: 429, Reset: time.Second}, 0},
		// Secondary: 403 with retry-after.
		{"secondary 403 retry-after", githubtest.Failure{Secondary: true, RetryAfter: time.Second}, 900 * time.Millisecond},
		// Secondary: 429 with retry-after.
		{"secondary 429 retry-after", githubtest.Failure{Secondary: true, Status: 429, RetryAfter: time.Second}, 900 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t)
			srv.AddWorkflow(repo, githubtest.Workflow{File: "migrate.yml", Conclusion: "success", PollsPerState: 1})
			id, err := c.DispatchWorkflow(ctx(t), repo, "migrate.yml", "main", nil)
			require.NoError(t, err)
			path := "/repos/acme/app/actions/runs/" + itoa(id)
			f := tt.failure
			f.Method, f.Path = "GET", path
			srv.Fail(f)

			start := time.Now()
			got, err := c.WaitForWorkflowRun(ctx(t), repo, id, time.Millisecond)
			require.NoError(t, err, "a rate limit mid-wait is waited out")
			assert.Equal(t, "success", got)
			assert.GreaterOrEqual(t, time.Since(start), tt.minWait, "the wait honours the provider's time")
			assert.GreaterOrEqual(t, srv.CountRequests("GET", path), 2, "the refused poll, then the ones that saw the run")
		})
	}
}

// A secondary limit that names no time means "at least a minute": a wait
// with less time left fails at once, naming the wait and the deadline,
// instead of hammering GitHub.
func TestWaitForWorkflowRunSecondaryWithoutRetryAfter(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "migrate.yml", Conclusion: "success"})
	id, err := c.DispatchWorkflow(ctx(t), repo, "migrate.yml", "main", nil)
	require.NoError(t, err)
	path := "/repos/acme/app/actions/runs/" + itoa(id)
	srv.Fail(githubtest.Failure{Method: "GET", Path: path, Secondary: true, Times: -1})

	wctx, cancel := context.WithTimeout(ctx(t), 5*time.Second)
	defer cancel()
	_, err = c.WaitForWorkflowRun(wctx, repo, id, time.Millisecond)
	var tooLong *adapters.WaitTooLongError
	require.ErrorAs(t, err, &tooLong)
	assert.Equal(t, adapters.DefaultSecondaryWait, tooLong.Wait)
	assert.True(t, tooLong.Deadline)
	assert.Contains(t, err.Error(), "secondary rate limit")
	assert.Contains(t, err.Error(), "past this phase's deadline")
	assert.Equal(t, 1, srv.CountRequests("GET", path), "no request while the limit holds")
}

// A primary limit whose reset is past the deadline fails at once too.
func TestWaitForWorkflowRunResetPastDeadline(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "migrate.yml", Conclusion: "success"})
	id, err := c.DispatchWorkflow(ctx(t), repo, "migrate.yml", "main", nil)
	require.NoError(t, err)
	srv.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/app/actions/runs/", RateLimit: true, Reset: time.Hour})

	wctx, cancel := context.WithTimeout(ctx(t), 5*time.Second)
	defer cancel()
	_, err = c.WaitForWorkflowRun(wctx, repo, id, time.Millisecond)
	var rl *github.RateLimitError
	require.ErrorAs(t, err, &rl)
	assert.Equal(t, github.CodeRateLimited, rl.API.Code)
	assert.Contains(t, err.Error(), "API rate limit exceeded")
	assert.Contains(t, err.Error(), "past this phase's deadline")
}

// GitHub Enterprise Server refusing return_run_details: the dispatch is sent
// again without it, and the run is found by listing.
func TestDispatchRetriedWithoutReturnRunDetails(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.SetRejectRunDetails(true)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "migrate.yml"})

	id, err := c.DispatchWorkflow(ctx(t), repo, "migrate.yml", "main", nil)
	require.NoError(t, err)
	d := srv.Dispatches(repo)
	require.Len(t, d, 1, "only the second request started a run")
	assert.Equal(t, d[0].RunID, id)
	assert.Equal(t, 2, srv.CountRequests("POST", "/repos/acme/app/actions/workflows/migrate.yml/dispatches"))
}

// A 422 for another reason is reported with GitHub's message, not hidden.
func TestDispatchOther422Reported(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "migrate.yml"})
	_, err := c.DispatchWorkflow(ctx(t), repo, "migrate.yml", "nope", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "No ref found for: nope")
	assert.False(t, errors.Is(err, context.DeadlineExceeded))
	assert.Empty(t, srv.Dispatches(repo))
}

// The run as GitHub's published example shows it (queued, conclusion null)
// is read as not done; the wait goes on to the run's completion.
func TestWaitReadsThePublishedRunExample(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "migrate.yml", Conclusion: "success"})
	id, err := c.DispatchWorkflow(ctx(t), repo, "migrate.yml", "main", nil)
	require.NoError(t, err)
	path := "/repos/acme/app/actions/runs/" + itoa(id)
	srv.Fail(githubtest.Failure{Method: "GET", Path: path, Example: "workflow_run", Times: 2})
	got, err := c.WaitForWorkflowRun(ctx(t), repo, id, time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, "success", got)
	assert.Greater(t, srv.CountRequests("GET", path), 2, "the two published answers were polled through")
}

// A dispatch refused by a rate limit is sent again after the wait: one run.
func TestDispatchWaitsOutARateLimit(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.AddWorkflow(repo, githubtest.Workflow{File: "migrate.yml"})
	path := "/repos/acme/app/actions/workflows/migrate.yml/dispatches"
	srv.Fail(githubtest.Failure{Method: "POST", Path: path, Secondary: true, RetryAfter: time.Second})
	start := time.Now()
	id, err := c.DispatchWorkflow(ctx(t), repo, "migrate.yml", "main", nil)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "retry-after honoured")
	d := srv.Dispatches(repo)
	require.Len(t, d, 1)
	assert.Equal(t, d[0].RunID, id)
	assert.Equal(t, 2, srv.CountRequests("POST", path))
}
