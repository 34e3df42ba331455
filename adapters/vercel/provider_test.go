package vercel_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/vercel"
	"github.com/opscontrolroom/opsd/adapters/vercel/verceltest"
)

func create(t *testing.T, c *vercel.Client) *vercel.Deployment {
	t.Helper()
	d, err := c.CreateDeployment(context.Background(), vercel.CreateDeploymentRequest{
		Name: "web", GitSource: &vercel.GitSource{Org: "acme", Repo: "web", Ref: "main"},
	})
	require.NoError(t, err)
	return d
}

// Every documented terminal readyState ends the wait on the poll that sees
// it, named in the error; none is polled until the timeout.
func TestWaitEndsOnEveryTerminalState(t *testing.T) {
	t.Parallel()
	for _, state := range vercel.Terminal {
		t.Run(state, func(t *testing.T) {
			t.Parallel()
			srv, c := setup(t)
			srv.SetBuildOutcome(state)
			d := create(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			final, err := c.WaitForDeployment(ctx, d.ID, time.Millisecond)
			require.NotNil(t, final)
			assert.Equal(t, state, final.State)
			if state == vercel.StateReady {
				require.NoError(t, err)
			} else {
				var fe *vercel.DeploymentFailedError
				require.ErrorAs(t, err, &fe)
				assert.Contains(t, err.Error(), "ended "+state)
			}
			assert.Equal(t, 2, srv.CountRequests("GET", "/v13/deployments/"+d.ID), "QUEUED -> BUILDING -> %s", state)
		})
	}
}

// A readyState Vercel does not document is polled on (it may still move),
// and the error at the deadline names it.
func TestWaitNamesAnUndocumentedState(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	srv.SetBuildOutcome("PAUSED")
	d := create(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.WaitForDeployment(ctx, d.ID, time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "last readyState PAUSED, which Vercel does not document")
}

// Vercel's spec documents two shapes of deployment events; both give lines.
func TestDeploymentEventsBothShapes(t *testing.T) {
	t.Parallel()
	for _, flat := range []bool{false, true} {
		t.Run(map[bool]string{false: "payload", true: "flat"}[flat], func(t *testing.T) {
			t.Parallel()
			srv, c := setup(t)
			srv.SetBuildOutcome(vercel.StateError)
			srv.SetFlatEvents(flat)
			d := create(t, c)
			_, err := c.WaitForDeployment(context.Background(), d.ID, time.Millisecond)
			require.Error(t, err)
			events, err := c.DeploymentEvents(context.Background(), d.ID, 50)
			require.NoError(t, err)
			require.NotEmpty(t, events)
			for _, e := range events {
				assert.NotEmpty(t, e.Text, "event %s has its text", e.Type)
				assert.False(t, e.Created.IsZero())
			}
		})
	}
}

// A rate limit whose reset is only in the body (error.limit.reset) is
// waited out as long as it says, not retried away in milliseconds.
func TestBodyOnlyRateLimitReset(t *testing.T) {
	t.Parallel()
	t.Run("get reports the wait", func(t *testing.T) {
		t.Parallel()
		srv, c := setup(t)
		srv.Fail(verceltest.Failure{Method: "GET", PathPrefix: "/v9/projects", Status: 429, BodyReset: time.Minute})
		_, err := c.GetProject(context.Background(), "web")
		var ae *adapters.APIError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, 429, ae.Status)
		assert.InDelta(t, time.Minute.Seconds(), ae.RetryAfter.Seconds(), 2)
		assert.Equal(t, 1, srv.CountRequests("GET", "/v9/projects/web"), "not retried inside the reset")
	})
	t.Run("wait rides it out", func(t *testing.T) {
		t.Parallel()
		srv, c := setup(t)
		d := create(t, c)
		srv.Fail(verceltest.Failure{Method: "GET", PathPrefix: "/v13/deployments/", Status: 429, BodyReset: 1500 * time.Millisecond})
		start := time.Now()
		final, err := c.WaitForDeployment(context.Background(), d.ID, time.Millisecond)
		require.NoError(t, err)
		assert.Equal(t, vercel.StateReady, final.State)
		assert.GreaterOrEqual(t, time.Since(start), time.Second, "waited for the body's reset")
	})
	t.Run("create retried after the reset", func(t *testing.T) {
		t.Parallel()
		srv, c := setup(t)
		srv.Fail(verceltest.Failure{Method: "POST", PathPrefix: "/v13/deployments", Status: 429, BodyReset: 1500 * time.Millisecond})
		start := time.Now()
		create(t, c)
		assert.GreaterOrEqual(t, time.Since(start), time.Second)
		assert.Equal(t, 2, srv.CountRequests("POST", "/v13/deployments"))
	})
}

// The gitSource sent is the one of the project's link type.
func TestCreateGitSourceOfLinkType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		linkType string
		want     map[string]any
	}{
		{"github", map[string]any{"type": "github", "org": "acme", "repo": "site", "ref": "main"}},
		{"github-limited", map[string]any{"type": "github-limited", "org": "acme", "repo": "site", "ref": "main"}},
		{"bitbucket", map[string]any{"type": "bitbucket", "owner": "acme", "slug": "site", "ref": "main"}},
		{"gitlab", map[string]any{"type": "gitlab", "projectId": float64(42), "ref": "main"}},
	}
	for _, tt := range tests {
		t.Run(tt.linkType, func(t *testing.T) {
			t.Parallel()
			srv, c := setup(t)
			srv.AddProject(verceltest.Project{ID: "prj_site", Name: "site", Org: "acme", Repo: "site", RepoID: 42, LinkType: tt.linkType})
			p, err := c.GetProject(context.Background(), "site")
			require.NoError(t, err)
			require.NotNil(t, p.Link)
			assert.Equal(t, tt.linkType, p.Link.Type)
			assert.Equal(t, "acme", p.Link.Org)
			assert.Equal(t, "site", p.Link.Repo)
			_, err = c.CreateDeployment(context.Background(), vercel.CreateDeploymentRequest{Name: "site",
				GitSource: &vercel.GitSource{Type: p.Link.Type, Org: p.Link.Org, Repo: p.Link.Repo, RepoID: p.Link.RepoID, Ref: "main"}})
			require.NoError(t, err)
			var body struct {
				GitSource map[string]any `json:"gitSource"`
			}
			reqs := srv.Requests()
			require.NoError(t, json.Unmarshal(reqs[len(reqs)-1].Body, &body))
			assert.Equal(t, tt.want, body.GitSource)
		})
	}
	t.Run("a github gitSource for a bitbucket project is refused", func(t *testing.T) {
		t.Parallel()
		srv, c := setup(t)
		srv.AddProject(verceltest.Project{ID: "prj_site", Name: "site", Org: "acme", Repo: "site", LinkType: "bitbucket"})
		_, err := c.CreateDeployment(context.Background(), vercel.CreateDeploymentRequest{Name: "site",
			GitSource: &vercel.GitSource{Org: "acme", Repo: "site", Ref: "main"}})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "incorrect_git_source_info")
	})
}
