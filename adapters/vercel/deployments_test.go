package vercel_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/vercel"
	"github.com/opscontrolroom/opsd/adapters/vercel/verceltest"
)

func TestListDeploymentsPagination(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	srv.AddProject(verceltest.Project{ID: "prj_api", Name: "api"})
	for i := range 130 {
		target := ""
		if i%2 == 0 {
			target = "production"
		}
		srv.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: "prj_web", Target: target})
		srv.AddDeployment(verceltest.Deployment{Name: "api", ProjectID: "prj_api"})
	}
	ctx := context.Background()

	tests := []struct {
		name      string
		target    string
		limit     int
		want      int
		wantPages int
	}{
		{"default limit", "", 0, 20, 1},
		{"two pages", "", 120, 120, 2},
		{"all of them", "", 500, 130, 2},
		{"production only", "production", 80, 65, 1},
		{"preview only", "preview", 10, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.CountRequests("GET", "/v6/deployments")
			ds, err := c.ListDeployments(ctx, "web", tt.target, tt.limit)
			require.NoError(t, err)
			require.Len(t, ds, tt.want)
			assert.Equal(t, tt.wantPages, srv.CountRequests("GET", "/v6/deployments")-before)
			seen := map[string]bool{}
			for i, d := range ds {
				assert.Equal(t, "prj_web", d.ProjectID)
				assert.False(t, seen[d.ID], "duplicate %s", d.ID)
				seen[d.ID] = true
				if i > 0 {
					assert.True(t, d.CreatedAt.Before(ds[i-1].CreatedAt), "newest first")
				}
				switch tt.target {
				case "production":
					assert.Equal(t, "production", d.Target)
				case "preview":
					assert.Empty(t, d.Target)
				}
			}
		})
	}
	// The second page is asked for with until = pagination.next.
	var untils []string
	for _, r := range srv.Requests() {
		if r.Path == "/v6/deployments" && r.Query.Get("until") != "" {
			untils = append(untils, r.Query.Get("until"))
		}
	}
	assert.NotEmpty(t, untils)
}

func TestCreateAndWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		outcome string
		wantErr string
	}{
		{"ready", vercel.StateReady, ""},
		{"build error", vercel.StateError, "BUILD_FAILED"},
		{"canceled", vercel.StateCanceled, "CANCELED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, c := setup(t)
			srv.SetBuildOutcome(tt.outcome)
			ctx := context.Background()
			d, err := c.CreateDeployment(ctx, vercel.CreateDeploymentRequest{
				Name: "web", Target: "production",
				GitSource: &vercel.GitSource{Org: "acme", Repo: "web", Ref: "main"},
			})
			require.NoError(t, err)
			assert.Equal(t, vercel.StateQueued, d.State)
			assert.Equal(t, "production", d.Target)
			assert.Equal(t, "main", d.CommitRef())
			assert.Len(t, d.CommitSHA(), 40)
			assert.NotEmpty(t, d.InspectorURL)

			final, err := c.WaitForDeployment(ctx, d.ID, time.Millisecond)
			require.NotNil(t, final)
			assert.Equal(t, tt.outcome, final.State)
			if tt.wantErr == "" {
				require.NoError(t, err)
			} else {
				var fe *vercel.DeploymentFailedError
				require.ErrorAs(t, err, &fe)
				assert.Contains(t, err.Error(), tt.wantErr)
			}
			// QUEUED -> BUILDING -> final: two GETs.
			assert.Equal(t, 2, srv.CountRequests("GET", "/v13/deployments/"+d.ID))
		})
	}
}

func TestCreateRedeploy(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	orig := srv.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: "prj_web", Meta: map[string]string{"githubCommitRef": "v1.2.0"}})
	d, err := c.CreateDeployment(context.Background(), vercel.CreateDeploymentRequest{Name: "web", DeploymentID: orig.ID, Target: "production"})
	require.NoError(t, err)
	assert.NotEqual(t, orig.ID, d.ID)
	assert.Equal(t, "v1.2.0", d.CommitRef())

	_, err = c.CreateDeployment(context.Background(), vercel.CreateDeploymentRequest{Name: "web", DeploymentID: "dpl_missing"})
	assert.True(t, adapters.IsNotFound(err))
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	gs := &vercel.GitSource{Org: "acme", Repo: "web", Ref: "main"}
	tests := []struct {
		name string
		req  vercel.CreateDeploymentRequest
		want string
	}{
		{"no name", vercel.CreateDeploymentRequest{GitSource: gs}, "name is required"},
		{"no source", vercel.CreateDeploymentRequest{Name: "web"}, "exactly one"},
		{"two sources", vercel.CreateDeploymentRequest{Name: "web", GitSource: gs, DeploymentID: "dpl_1"}, "exactly one"},
		{"incomplete git source", vercel.CreateDeploymentRequest{Name: "web", GitSource: &vercel.GitSource{Ref: "main"}}, "org, repo and ref"},
		{"unknown project (server)", vercel.CreateDeploymentRequest{Name: "nope", GitSource: gs}, "404 not_found"},
		{"bad target (server)", vercel.CreateDeploymentRequest{Name: "web", Target: "qa", GitSource: gs}, "400 bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateDeployment(context.Background(), tt.req)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	assert.Empty(t, srv.Deployments())
}

func TestCreateRetries(t *testing.T) {
	t.Parallel()
	gs := &vercel.GitSource{Org: "acme", Repo: "web", Ref: "main"}
	tests := []struct {
		name      string
		failure   verceltest.Failure
		wantErr   int // expected APIError status, 0 for success
		wantPosts int
	}{
		{"503 is not retried", verceltest.Failure{Method: "POST", Status: 503}, 503, 1},
		{"500 is not retried", verceltest.Failure{Method: "POST", Status: 500, Times: 3}, 500, 1},
		{"429 is retried", verceltest.Failure{Method: "POST", Status: 429, RetryAfter: "0", Times: 2}, 0, 3},
		{"429 until retries run out", verceltest.Failure{Method: "POST", Status: 429, RetryAfter: "0", Times: 10}, 429, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, c := setup(t)
			srv.Fail(tt.failure)
			d, err := c.CreateDeployment(context.Background(), vercel.CreateDeploymentRequest{Name: "web", GitSource: gs})
			assert.Equal(t, tt.wantPosts, srv.CountRequests("POST", "/v13/deployments"))
			if tt.wantErr == 0 {
				require.NoError(t, err)
				assert.Len(t, srv.Deployments(), 1)
				assert.NotEmpty(t, d.ID)
				return
			}
			var ae *adapters.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.wantErr, ae.Status)
			assert.True(t, ae.Temporary())
			assert.Empty(t, srv.Deployments())
		})
	}
}

func TestGetRetriesAndErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failure  verceltest.Failure
		wantCode string // "" means the GET eventually succeeds
		wantGets int
	}{
		{"503 then ok", verceltest.Failure{Status: 503}, "", 2},
		{"429 with Retry-After then ok", verceltest.Failure{Status: 429, RetryAfter: "0", Times: 2}, "", 3},
		{"429 with HTTP-date", verceltest.Failure{Status: 429, RetryAfter: time.Now().UTC().Format(http.TimeFormat)}, "", 2},
		{"persistent 500", verceltest.Failure{Status: 500, Code: "internal_server_error", Message: "boom", Times: 10}, "internal_server_error", 4},
		{"400 is final", verceltest.Failure{Status: 400, Code: "bad_request", Message: "Invalid request"}, "bad_request", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, c := setup(t)
			d := srv.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: "prj_web"})
			tt.failure.PathPrefix = "/v13/deployments/"
			srv.Fail(tt.failure)
			got, err := c.GetDeployment(context.Background(), d.ID)
			assert.Equal(t, tt.wantGets, srv.CountRequests("GET", "/v13/deployments/"+d.ID))
			if tt.wantCode == "" {
				require.NoError(t, err)
				assert.Equal(t, d.ID, got.ID)
				return
			}
			var ae *adapters.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.wantCode, ae.Code)
			assert.Equal(t, tt.failure.Status, ae.Status)
			assert.Equal(t, "GET", ae.Method)
		})
	}
}

func TestGetDeploymentByURL(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	d := srv.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: "prj_web", URL: "web-abc.vercel.app"})
	for _, key := range []string{"web-abc.vercel.app", "https://web-abc.vercel.app/", d.ID} {
		got, err := c.GetDeployment(context.Background(), key)
		require.NoError(t, err, key)
		assert.Equal(t, d.ID, got.ID)
		assert.Equal(t, "web-abc.vercel.app", got.URL)
		assert.Equal(t, vercel.StateReady, got.State)
		assert.Equal(t, d.CreatedAt, got.CreatedAt)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	// Stuck in BUILDING: nothing moves it on.
	d := srv.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: "prj_web", State: vercel.StateBuilding})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.WaitForDeployment(ctx, d.ID, 5*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	_, err = c.WaitForDeployment(context.Background(), "dpl_missing", time.Millisecond)
	assert.True(t, adapters.IsNotFound(err))
}

func TestWaitPollsThroughTemporaryErrors(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	d, err := c.CreateDeployment(context.Background(), vercel.CreateDeploymentRequest{Name: "web", DeploymentID: srv.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: "prj_web"}).ID})
	require.NoError(t, err)
	srv.Fail(verceltest.Failure{Method: "GET", PathPrefix: "/v13/deployments/" + d.ID, Status: 503, Times: 4}) // outlasts one GET's retries
	got, err := c.WaitForDeployment(context.Background(), d.ID, time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, vercel.StateReady, got.State)
}

func TestDeploymentEvents(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	base := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	d := srv.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: "prj_web", Events: []verceltest.Event{
		{Type: "command", Text: "npm run build", Created: base},
		{Type: "stdout", Text: "compiling", Created: base.Add(time.Second)},
		{Type: "stderr", Text: "error: x is undefined", Created: base.Add(2 * time.Second)},
	}})
	ctx := context.Background()

	last2, err := c.DeploymentEvents(ctx, d.ID, 2)
	require.NoError(t, err)
	require.Len(t, last2, 2)
	assert.Equal(t, "compiling", last2[0].Text)
	assert.Equal(t, vercel.Event{Type: "stderr", Text: "error: x is undefined", Created: base.Add(2 * time.Second)}, last2[1])

	all, err := c.DeploymentEvents(ctx, d.ID, 0)
	require.NoError(t, err)
	require.Len(t, all, 3)
	assert.Equal(t, "npm run build", all[0].Text)

	_, err = c.DeploymentEvents(ctx, "dpl_missing", 10)
	assert.True(t, adapters.IsNotFound(err))
}
