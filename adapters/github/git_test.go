package github_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
)

func TestGetRef(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	head, _ := srv.Branch(repo, "main")
	feature := srv.AddCommit(repo, "main", "second", map[string]string{"a.txt": "a"})
	srv.SetBranch(repo, "feature/x", feature)
	srv.SetTag(repo, "v1.0.0", head)

	tests := []struct {
		name, repo, ref, want string
		wantErr               error
		wantMsg               string // GitHub's own message, kept in the error
	}{
		{name: "branch", repo: repo, ref: "main", want: feature},
		{name: "branch with slash", repo: repo, ref: "feature/x", want: feature},
		{name: "full branch ref", repo: repo, ref: "refs/heads/main", want: feature},
		{name: "tag", repo: repo, ref: "v1.0.0", want: head},
		{name: "full tag ref", repo: repo, ref: "refs/tags/v1.0.0", want: head},
		{name: "sha", repo: repo, ref: head, want: head},
		{name: "short sha", repo: repo, ref: head[:10], want: head},
		{name: "unknown ref: 422", repo: repo, ref: "nope", wantErr: github.ErrRefNotFound, wantMsg: "No commit found for SHA: nope"},
		{name: "unknown repo: 404", repo: "acme/other", ref: "main", wantErr: github.ErrRepoNotFound, wantMsg: "404: Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.GetRef(ctx(t), tt.repo, tt.ref)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Contains(t, err.Error(), tt.ref, "the error names the ref")
				assert.Contains(t, err.Error(), tt.wantMsg)
				if tt.wantErr == github.ErrRepoNotFound {
					assert.NotErrorIs(t, err, github.ErrRefNotFound, "a missing repository is not a missing ref")
				}
				var api *adapters.APIError
				require.ErrorAs(t, err, &api, "the vendor error stays reachable")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRepoValidation(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	for _, bad := range []string{"", "acme", "acme/", "/app", "acme/app/x", "ac me/app", "acme/..", "-acme/app"} {
		t.Run(bad, func(t *testing.T) {
			_, err := c.GetRef(ctx(t), bad, "main")
			var inv *github.InvalidRepoError
			require.ErrorAs(t, err, &inv)
			assert.Equal(t, bad, inv.Repo)
		})
	}
	assert.Empty(t, srv.Requests(), "invalid repositories never reach the API")
}

func TestDefaultBranch(t *testing.T) {
	t.Parallel()
	srv := githubtest.New(t)
	srv.AddRepo("acme/legacy", "master")
	c := newClient(t, srv)

	got, err := c.DefaultBranch(ctx(t), "acme/legacy")
	require.NoError(t, err)
	assert.Equal(t, "master", got)

	_, err = c.DefaultBranch(ctx(t), "acme/missing")
	assert.True(t, adapters.IsNotFound(err), "got %v", err)
}

func TestCreateBranch(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	head, _ := srv.Branch(repo, "main")

	sha, err := c.CreateBranch(ctx(t), repo, "main", "opsd/fix-1")
	require.NoError(t, err)
	assert.Equal(t, head, sha)
	got, ok := srv.Branch(repo, "opsd/fix-1")
	require.True(t, ok)
	assert.Equal(t, head, got)

	_, err = c.CreateBranch(ctx(t), repo, "main", "opsd/fix-1")
	require.ErrorIs(t, err, github.ErrAlreadyExists)
	var api *adapters.APIError
	require.ErrorAs(t, err, &api)
	assert.Equal(t, 422, api.Status)
	assert.Equal(t, "Reference already exists", api.Message)

	_, err = c.CreateBranch(ctx(t), repo, "no-such-base", "opsd/fix-2")
	require.ErrorIs(t, err, github.ErrRefNotFound)
}

func TestCommitFiles(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	head, _ := srv.Branch(repo, "main")
	_, err := c.CreateBranch(ctx(t), repo, "main", "opsd/bump")
	require.NoError(t, err)

	files := map[string]string{"deploy/version.txt": "1.2.3\n", "CHANGELOG.md": "- bump\n"}
	sha, err := c.CommitFiles(ctx(t), repo, "opsd/bump", "Bump version", files)
	require.NoError(t, err)

	got, ok := srv.Branch(repo, "opsd/bump")
	require.True(t, ok)
	assert.Equal(t, sha, got, "the branch moved to the new commit")
	commit, ok := srv.Commit(repo, sha)
	require.True(t, ok)
	assert.Equal(t, "Bump version", commit.Message)
	assert.Equal(t, []string{head}, commit.Parents)
	assert.Equal(t, "1.2.3\n", commit.Files["deploy/version.txt"])
	assert.Equal(t, "- bump\n", commit.Files["CHANGELOG.md"])
	assert.Contains(t, commit.Files, "README.md", "the base tree is kept")
	main, _ := srv.Branch(repo, "main")
	assert.Equal(t, head, main, "other branches are untouched")

	t.Run("missing branch", func(t *testing.T) {
		_, err := c.CommitFiles(ctx(t), repo, "nope", "m", files)
		require.ErrorIs(t, err, github.ErrRefNotFound)
	})
	t.Run("invalid path", func(t *testing.T) {
		_, err := c.CommitFiles(ctx(t), repo, "opsd/bump", "m", map[string]string{"../x": "y"})
		require.Error(t, err)
	})
	t.Run("no files", func(t *testing.T) {
		_, err := c.CommitFiles(ctx(t), repo, "opsd/bump", "m", nil)
		require.Error(t, err)
	})
}

func TestCommitFilesRetriesObjectCreation(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.Fail(githubtest.Failure{Method: "POST", Path: "/repos/acme/app/git/trees", Status: 502})
	srv.Fail(githubtest.Failure{Method: "POST", Path: "/repos/acme/app/git/commits", Status: 503})

	_, err := c.CommitFiles(ctx(t), repo, "main", "m", map[string]string{"x": "y"})
	require.NoError(t, err)
	assert.Equal(t, 2, srv.CountRequests("POST", "/repos/acme/app/git/trees"))
	assert.Equal(t, 2, srv.CountRequests("POST", "/repos/acme/app/git/commits"))
}

func TestCommitFilesRefUpdateIsNotRetried(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.Fail(githubtest.Failure{Method: "PATCH", Path: "/repos/acme/app/git/refs/heads/main", Status: 500})

	_, err := c.CommitFiles(ctx(t), repo, "main", "m", map[string]string{"x": "y"})
	var api *adapters.APIError
	require.ErrorAs(t, err, &api)
	assert.Equal(t, 500, api.Status)
	assert.True(t, errors.Is(err, api))
	assert.Equal(t, 1, srv.CountRequests("PATCH", "/repos/acme/app/git/refs/heads/main"))
}
