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

func TestNew(t *testing.T) {
	t.Parallel()
	_, err := github.New(adapters.Options{})
	require.ErrorIs(t, err, adapters.ErrNotConfigured)
	assert.Contains(t, err.Error(), "GITHUB_TOKEN")

	_, err = github.New(adapters.Options{Token: "t", BaseURL: "ftp://x"})
	require.Error(t, err)

	// A base URL without a trailing slash (as GITHUB_API_URL is written) works.
	srv := githubtest.New(t)
	srv.AddRepo(repo, "main")
	c, err := github.New(adapters.Options{Token: srv.Token, BaseURL: srv.URL[:len(srv.URL)-1]})
	require.NoError(t, err)
	_, err = c.DefaultBranch(ctx(t), repo)
	require.NoError(t, err)
}

func TestBadToken(t *testing.T) {
	t.Parallel()
	srv := githubtest.New(t)
	srv.AddRepo(repo, "main")
	c, err := github.New(adapters.Options{Token: "wrong", BaseURL: srv.URL})
	require.NoError(t, err)

	_, err = c.DefaultBranch(ctx(t), repo)
	var api *adapters.APIError
	require.ErrorAs(t, err, &api)
	assert.Equal(t, 401, api.Status)
	assert.Equal(t, "Bad credentials", api.Message)
	assert.False(t, adapters.IsTemporary(err))
}

func TestErrorTranslation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		failure    githubtest.Failure
		wantStatus int
		wantCode   string
		temporary  bool
		rateLimit  bool
		retryAfter bool
		attempts   int // GETs sent: 1 + MaxRetries (2) when retried
	}{
		{name: "server error retried then reported", failure: githubtest.Failure{Status: 500, Times: -1},
			wantStatus: 500, temporary: true, attempts: 3},
		{name: "429 with Retry-After past the inline budget handed over", failure: githubtest.Failure{Status: 429, RetryAfter: time.Second, Times: -1},
			wantStatus: 429, wantCode: github.CodeSecondaryRateLimited, temporary: true, rateLimit: true, retryAfter: true, attempts: 1},
		{name: "primary rate limit", failure: githubtest.Failure{RateLimit: true},
			wantStatus: 403, wantCode: github.CodeRateLimited, temporary: true, rateLimit: true, retryAfter: true, attempts: 1},
		{name: "secondary rate limit", failure: githubtest.Failure{Secondary: true, RetryAfter: 30 * time.Second},
			wantStatus: 403, wantCode: github.CodeSecondaryRateLimited, temporary: true, rateLimit: true, retryAfter: true, attempts: 1},
		{name: "forbidden", failure: githubtest.Failure{Status: 403, Message: "Resource not accessible by integration"},
			wantStatus: 403, attempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t)
			f := tt.failure
			f.Method, f.Path = "GET", "/repos/acme/app"
			srv.Fail(f)

			_, err := c.DefaultBranch(ctx(t), repo)
			var api *adapters.APIError
			require.ErrorAs(t, err, &api)
			assert.Equal(t, tt.wantStatus, api.Status)
			assert.Equal(t, tt.wantCode, api.Code)
			assert.Equal(t, "github", api.Adapter)
			assert.Equal(t, "GET", api.Method)
			assert.Equal(t, "/repos/acme/app", api.Path)
			assert.NotEmpty(t, api.Message)
			assert.Equal(t, tt.temporary, adapters.IsTemporary(err))
			var rl *github.RateLimitError
			assert.Equal(t, tt.rateLimit, errors.As(err, &rl))
			assert.Equal(t, tt.retryAfter, api.RetryAfter > 0, "retry after %s", api.RetryAfter)
			assert.Equal(t, tt.attempts, srv.CountRequests("GET", "/repos/acme/app"))
		})
	}
}

func TestTransientFailureRecovers(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/app", Status: 502, Times: 2})
	rec := &calls{}

	got, err := c.DefaultBranch(adapters.WithRecorder(ctx(t), rec), repo)
	require.NoError(t, err)
	assert.Equal(t, "main", got)
	var statuses []int
	for _, call := range rec.all() {
		assert.Equal(t, "github", call.Adapter)
		assert.Equal(t, "/repos/acme/app", call.Path)
		statuses = append(statuses, call.Status)
	}
	assert.Equal(t, []int{502, 502, 200}, statuses)
}

func TestSlowResponseAndCancellation(t *testing.T) {
	t.Parallel()
	t.Run("per-attempt timeout", func(t *testing.T) {
		t.Parallel()
		srv := githubtest.New(t)
		srv.AddRepo(repo, "main")
		srv.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/app", Delay: time.Minute, Times: -1})
		c, err := github.New(adapters.Options{
			Token: srv.Token, BaseURL: srv.URL, Timeout: 20 * time.Millisecond, MaxRetries: -1,
		})
		require.NoError(t, err)
		_, err = c.DefaultBranch(ctx(t), repo)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("caller cancels", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t)
		srv.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/app", Delay: time.Minute, Times: -1})
		cctx, cancel := context.WithCancel(ctx(t))
		done := make(chan error, 1)
		go func() {
			_, err := c.DefaultBranch(cctx, repo)
			done <- err
		}()
		require.Eventually(t, func() bool { return srv.CountRequests("GET", "/repos/acme/app") == 1 },
			5*time.Second, time.Millisecond)
		cancel()
		select {
		case err := <-done:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(5 * time.Second):
			t.Fatal("DefaultBranch did not return after cancel")
		}
	})
}

// go-github remembers a spent primary rate limit and refuses further calls
// until its reset without asking GitHub; they translate the same way.
func TestPrimaryRateLimitIsRemembered(t *testing.T) {
	t.Parallel()
	c, srv := setup(t)
	srv.Fail(githubtest.Failure{RateLimit: true})

	for range 2 {
		_, err := c.DefaultBranch(ctx(t), repo)
		var rl *github.RateLimitError
		require.ErrorAs(t, err, &rl)
		assert.Equal(t, 403, rl.API.Status)
		assert.Positive(t, rl.API.RetryAfter)
		assert.True(t, adapters.IsTemporary(err))
	}
	assert.Equal(t, 1, srv.CountRequests("GET", "/repos/acme/app"))
}
