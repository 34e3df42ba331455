package github_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
)

// summaryOfMain seeds the head commit of repo's main branch, then returns
// what get summarises for it, and the fake and the commit for checking the
// requests made.
func summaryOfMain(t *testing.T, seed func(srv *githubtest.Server, sha string),
	get func(c *github.Client, ctx context.Context, repo, sha string) (github.Summary, error),
) (github.Summary, *githubtest.Server, string) {
	t.Helper()
	c, srv := setup(t)
	sha, _ := srv.Branch(repo, "main")
	seed(srv, sha)
	got, err := get(c, ctx(t), repo, sha)
	require.NoError(t, err)
	return got, srv, sha
}

func TestCombinedStatus(t *testing.T) {
	t.Parallel()
	type st struct{ context, state string }
	tests := []struct {
		name     string
		statuses []st
		want     github.Summary
	}{
		{name: "none", want: github.Summary{State: github.StateSuccess}},
		{name: "all green", statuses: []st{{"ci/build", "success"}, {"ci/lint", "success"}},
			want: github.Summary{State: github.StateSuccess, Total: 2}},
		{name: "one pending", statuses: []st{{"ci/build", "success"}, {"ci/deploy", "pending"}},
			want: github.Summary{State: github.StatePending, Total: 2}},
		{name: "failure and error win over pending",
			statuses: []st{{"ci/lint", "error"}, {"ci/deploy", "pending"}, {"ci/build", "failure"}},
			want:     github.Summary{State: github.StateFailure, Total: 3, Failed: []string{"ci/build", "ci/lint"}}},
		{name: "latest status per context", statuses: []st{{"ci/build", "failure"}, {"ci/build", "success"}},
			want: github.Summary{State: github.StateSuccess, Total: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, _, _ := summaryOfMain(t, func(srv *githubtest.Server, sha string) {
				for _, s := range tt.statuses {
					srv.SetStatus(repo, sha, s.context, s.state)
				}
			}, (*github.Client).CombinedStatus)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestCombinedStatusPaginates(t *testing.T) {
	t.Parallel()
	got, srv, sha := summaryOfMain(t, func(srv *githubtest.Server, sha string) {
		for i := range 230 {
			srv.SetStatus(repo, sha, fmt.Sprintf("ctx-%03d", i), "success")
		}
		srv.SetStatus(repo, sha, "zz-last", "failure")
	}, (*github.Client).CombinedStatus)
	assert.Equal(t, 231, got.Total)
	assert.Equal(t, []string{"zz-last"}, got.Failed)
	assert.Equal(t, 3, srv.CountRequests("GET", "/repos/acme/app/commits/"+sha+"/status"))
}

func TestCheckRuns(t *testing.T) {
	t.Parallel()
	type cr struct{ name, status, conclusion string }
	tests := []struct {
		name string
		runs []cr
		want github.Summary
	}{
		{name: "none", want: github.Summary{State: github.StateSuccess}},
		{name: "success neutral skipped", runs: []cr{{"build", "completed", "success"}, {"docs", "completed", "neutral"}, {"e2e", "completed", "skipped"}},
			want: github.Summary{State: github.StateSuccess, Total: 3}},
		{name: "in progress", runs: []cr{{"build", "completed", "success"}, {"e2e", "in_progress", ""}, {"lint", "queued", ""}},
			want: github.Summary{State: github.StatePending, Total: 3}},
		{name: "failures", runs: []cr{{"build", "completed", "timed_out"}, {"e2e", "completed", "failure"}, {"lint", "queued", ""}, {"x", "completed", "cancelled"}},
			want: github.Summary{State: github.StateFailure, Total: 4, Failed: []string{"build", "e2e", "x"}}},
		{name: "a re-run replaces the failed run", runs: []cr{{"build", "completed", "failure"}, {"build", "completed", "success"}},
			want: github.Summary{State: github.StateSuccess, Total: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, _, _ := summaryOfMain(t, func(srv *githubtest.Server, sha string) {
				for _, r := range tt.runs {
					srv.AddCheckRun(repo, sha, r.name, r.status, r.conclusion)
				}
			}, (*github.Client).CheckRuns)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestCheckRunsPaginates(t *testing.T) {
	t.Parallel()
	got, srv, sha := summaryOfMain(t, func(srv *githubtest.Server, sha string) {
		for i := range 150 {
			srv.AddCheckRun(repo, sha, fmt.Sprintf("job-%03d", i), "completed", "success")
		}
		srv.AddCheckRun(repo, sha, "slow", "in_progress", "")
	}, (*github.Client).CheckRuns)
	assert.Equal(t, github.Summary{State: github.StatePending, Total: 151}, got)
	assert.Equal(t, 2, srv.CountRequests("GET", "/repos/acme/app/commits/"+sha+"/check-runs"))
}

func TestSummaryMerge(t *testing.T) {
	t.Parallel()
	ok := github.Summary{State: github.StateSuccess, Total: 2}
	pending := github.Summary{State: github.StatePending, Total: 1}
	failed := github.Summary{State: github.StateFailure, Total: 1, Failed: []string{"b"}}
	assert.Equal(t, github.Summary{State: github.StateSuccess, Total: 4}, ok.Merge(ok))
	assert.Equal(t, github.Summary{State: github.StatePending, Total: 3}, ok.Merge(pending))
	assert.Equal(t, github.Summary{State: github.StateFailure, Total: 2, Failed: []string{"b"}}, pending.Merge(failed))
	assert.Equal(t, []string{"a", "b"}, failed.Merge(github.Summary{State: github.StateFailure, Failed: []string{"a"}}).Failed)
}
