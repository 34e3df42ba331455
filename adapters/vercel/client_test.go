package vercel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/vercel"
	"github.com/opscontrolroom/opsd/adapters/vercel/verceltest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const team = "team_ops"

// setup starts a fake with one linked project and a client for it.
func setup(t *testing.T) (*verceltest.Server, *vercel.Client) {
	t.Helper()
	srv := verceltest.NewServer(t, verceltest.WithTeam(team))
	srv.AddProject(verceltest.Project{ID: "prj_web", Name: "web", Org: "acme", Repo: "web"})
	c, err := vercel.New(srv.Options(), team)
	require.NoError(t, err)
	return srv, c
}

func TestNew(t *testing.T) {
	t.Parallel()
	_, err := vercel.New(adapters.Options{}, "")
	require.ErrorIs(t, err, adapters.ErrNotConfigured)
	assert.Contains(t, err.Error(), "VERCEL_TOKEN")

	_, err = vercel.New(adapters.Options{Token: "x", BaseURL: "not a url"}, "")
	require.Error(t, err)

	c, err := vercel.New(adapters.Options{Token: "x"}, "")
	require.NoError(t, err)
	require.NotNil(t, c)
}

func TestGetProject(t *testing.T) {
	t.Parallel()
	_, c := setup(t)
	ctx := context.Background()

	for _, key := range []string{"prj_web", "web"} {
		p, err := c.GetProject(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, "prj_web", p.ID)
		assert.Equal(t, "web", p.Name)
		require.NotNil(t, p.Link)
		assert.Equal(t, vercel.ProjectLink{Type: "github", Org: "acme", Repo: "web", ProductionBranch: "main"}, *p.Link)
	}

	_, err := c.GetProject(ctx, "nope")
	require.Error(t, err)
	assert.True(t, adapters.IsNotFound(err))
	var ae *adapters.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "not_found", ae.Code)
	assert.Equal(t, "Project not found", ae.Message)
	assert.Equal(t, "/v9/projects/nope", ae.Path)
}

func TestAuthAndTeam(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	ctx := context.Background()
	_, err := c.GetProject(ctx, "web")
	require.NoError(t, err)
	_, err = c.ListDeployments(ctx, "web", "", 5)
	require.NoError(t, err)
	for _, r := range srv.Requests() {
		assert.Equal(t, team, r.Query.Get("teamId"), "%s %s", r.Method, r.Path)
	}

	tests := []struct {
		name   string
		token  string
		teamID string
	}{
		{"wrong token", "stolen", team},
		{"missing team", verceltest.DefaultToken, ""},
		{"other team", verceltest.DefaultToken, "team_other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := srv.Options()
			o.Token = tt.token
			c, err := vercel.New(o, tt.teamID)
			require.NoError(t, err)
			_, err = c.GetProject(ctx, "web")
			var ae *adapters.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, http.StatusForbidden, ae.Status)
			assert.Equal(t, "forbidden", ae.Code)
			assert.False(t, ae.Temporary())
		})
	}
}

func TestNonJSONError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>bad gateway</html>"))
	}))
	t.Cleanup(srv.Close)
	c, err := vercel.New(adapters.Options{Token: "t", BaseURL: srv.URL, MaxRetries: -1}, "")
	require.NoError(t, err)
	_, err = c.GetDeployment(context.Background(), "dpl_1")
	var ae *adapters.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 502, ae.Status)
	assert.Contains(t, ae.Message, "bad gateway")
}

func TestPerAttemptTimeout(t *testing.T) {
	t.Parallel()
	srv, _ := setup(t)
	srv.SetLatency(time.Minute) // cut short when the client gives up
	o := srv.Options()
	o.Timeout = 50 * time.Millisecond
	o.MaxRetries = 1
	c, err := vercel.New(o, team)
	require.NoError(t, err)
	start := time.Now()
	_, err = c.GetProject(context.Background(), "web")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, 2, srv.CountRequests("GET", "/v9/projects/web"))
}

func TestCallsRecorded(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	srv.Fail(verceltest.Failure{Status: 503})
	var mu sync.Mutex
	var calls []adapters.Call
	ctx := adapters.WithRecorder(context.Background(), adapters.RecorderFunc(func(_ context.Context, call adapters.Call) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call)
	}))
	_, err := c.GetProject(ctx, "web")
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, calls, 2)
	for i, call := range calls {
		assert.Equal(t, "vercel", call.Adapter)
		assert.Equal(t, "/v9/projects/web", call.Path)
		assert.Equal(t, i+1, call.Attempt)
	}
	assert.Equal(t, []int{503, 200}, []int{calls[0].Status, calls[1].Status})
}
