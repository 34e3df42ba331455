package github_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
)

func TestOpenPullRequest(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	_, err := c.CreateBranch(ctx(t), repo, "main", "opsd/fix")
	require.NoError(t, err)
	_, err = c.CommitFiles(ctx(t), repo, "opsd/fix", "fix", map[string]string{"x": "y"})
	require.NoError(t, err)

	n, url, err := c.OpenPullRequest(ctx(t), repo, "opsd/fix", "main", "Fix it", "Body")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "https://github.com/acme/app/pull/1", url)
	prs := srv.PullRequests(repo)
	require.Len(t, prs, 1)
	assert.Equal(t, githubtest.PullRequest{
		Number: 1, Title: "Fix it", Body: "Body", Head: "opsd/fix", Base: "main",
		HeadSHA: prs[0].HeadSHA, State: "open", URL: url,
	}, prs[0])

	t.Run("duplicate", func(t *testing.T) {
		_, _, err := c.OpenPullRequest(ctx(t), repo, "acme:opsd/fix", "main", "Again", "")
		require.ErrorIs(t, err, github.ErrAlreadyExists)
		var api *adapters.APIError
		require.ErrorAs(t, err, &api)
		assert.Equal(t, 422, api.Status)
		assert.Equal(t, "custom", api.Code)
	})
	t.Run("missing head", func(t *testing.T) {
		_, _, err := c.OpenPullRequest(ctx(t), repo, "nope", "main", "T", "")
		require.Error(t, err)
		require.NotErrorIs(t, err, github.ErrAlreadyExists)
		var api *adapters.APIError
		require.ErrorAs(t, err, &api)
		assert.Equal(t, "invalid", api.Code)
	})
	t.Run("nothing to merge", func(t *testing.T) {
		_, err := c.CreateBranch(ctx(t), repo, "main", "opsd/empty")
		require.NoError(t, err)
		_, _, err = c.OpenPullRequest(ctx(t), repo, "opsd/empty", "main", "T", "")
		require.NotErrorIs(t, err, github.ErrAlreadyExists)
		assert.Contains(t, err.Error(), "No commits between")
	})
}

func TestIssues(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	const fp = "opsd:fp:3f2a"

	_, found, err := c.FindOpenIssue(ctx(t), repo, fp)
	require.NoError(t, err)
	assert.False(t, found)

	n, url, err := c.OpenIssue(ctx(t), repo, "Deploy failed", "details", []string{"opsd", fp})
	require.NoError(t, err)
	assert.Equal(t, "https://github.com/acme/app/issues/1", url)
	_, _, err = c.OpenIssue(ctx(t), repo, "Other", "", []string{"opsd"})
	require.NoError(t, err)

	got, found, err := c.FindOpenIssue(ctx(t), repo, fp)
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, github.Issue{Number: n, Title: "Deploy failed", URL: url}, got)

	curl, err := c.CommentIssue(ctx(t), repo, n, "happened again")
	require.NoError(t, err)
	assert.Contains(t, curl, url+"#issuecomment-")
	assert.Equal(t, []string{"happened again"}, srv.Comments(repo, n))

	srv.CloseIssue(repo, n)
	_, found, err = c.FindOpenIssue(ctx(t), repo, fp)
	require.NoError(t, err)
	assert.False(t, found, "closed issues do not count")

	_, err = c.CommentIssue(ctx(t), repo, 99, "x")
	assert.True(t, adapters.IsNotFound(err), "got %v", err)
}

func TestFindOpenIssueSkipsPullRequests(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	const label = "opsd:fp:1"
	n, _, err := c.OpenIssue(ctx(t), repo, "old", "", []string{label})
	require.NoError(t, err)
	// 120 newer pull requests carrying the label fill the first page: the
	// issues API lists pull requests too.
	srv.SetBranch(repo, "feature", mustBranch(t, srv, "main"))
	sha := srv.AddCommit(repo, "feature", "change", map[string]string{"f": "1"})
	for i := range 120 {
		b := "feature-" + strconv.Itoa(i)
		srv.SetBranch(repo, b, sha)
		pr, _, err := c.OpenPullRequest(ctx(t), repo, b, "main", "PR", "")
		require.NoError(t, err)
		srv.AddLabels(repo, pr, label)
	}
	got, found, err := c.FindOpenIssue(ctx(t), repo, label)
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, n, got.Number)
	assert.Equal(t, 2, srv.CountRequests("GET", "/repos/acme/app/issues"))
}

func mustBranch(t *testing.T, srv *githubtest.Server, b string) string {
	t.Helper()
	sha, ok := srv.Branch(repo, b)
	require.True(t, ok)
	return sha
}
