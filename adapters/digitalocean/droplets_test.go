package digitalocean_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/digitalocean"
	"github.com/opscontrolroom/opsd/adapters/digitalocean/dotest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func setup(t *testing.T) (*dotest.Server, *digitalocean.Client) {
	t.Helper()
	srv := dotest.NewServer(t)
	c, err := digitalocean.New(srv.Options())
	require.NoError(t, err)
	return srv, c
}

func TestNew(t *testing.T) {
	t.Parallel()
	_, err := digitalocean.New(adapters.Options{})
	require.ErrorIs(t, err, adapters.ErrNotConfigured)
	assert.Contains(t, err.Error(), "DIGITALOCEAN_TOKEN")
	_, err = digitalocean.New(adapters.Options{Token: "t", BaseURL: "::nope"})
	require.Error(t, err)
	_, err = digitalocean.New(adapters.Options{Token: "t"})
	require.NoError(t, err)
}

func TestDroplets(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	web := srv.AddDroplet(dotest.Droplet{Name: "web-01", PublicIPv4: "203.0.113.10", PrivateIPv4: "10.10.0.5", Region: "fra1", Tags: []string{"web", "prod"}})
	srv.AddDroplet(dotest.Droplet{Name: "web-02", PublicIPv4: "203.0.113.11", Tags: []string{"web"}, Status: "off"})
	srv.AddDroplet(dotest.Droplet{Name: "db-01", Tags: []string{"db", "prod"}})
	for i := range 450 {
		srv.AddDroplet(dotest.Droplet{Name: fmt.Sprintf("worker-%03d", i), Tags: []string{"worker"}})
	}
	ctx := context.Background()

	tests := []struct {
		name, byName, byTag string
		want                int
		wantPages           int
	}{
		{"by name", "web-01", "", 1, 1},
		{"by name is case-insensitive", "WEB-01", "", 1, 1},
		{"unknown name", "nope", "", 0, 1},
		{"by tag", "", "prod", 2, 1},
		{"by tag, three pages", "", "worker", 450, 3},
		{"name within tag", "db-01", "prod", 1, 1},
		{"all", "", "", 453, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.CountRequests("GET", "/v2/droplets")
			ds, err := c.Droplets(ctx, tt.byName, tt.byTag)
			require.NoError(t, err)
			assert.Len(t, ds, tt.want)
			assert.Equal(t, tt.wantPages, srv.CountRequests("GET", "/v2/droplets")-before)
		})
	}

	ds, err := c.Droplets(ctx, "web-01", "")
	require.NoError(t, err)
	require.Len(t, ds, 1)
	assert.Equal(t, digitalocean.Droplet{ID: web.ID, Name: "web-01", Status: "active", PublicIPv4: "203.0.113.10", Region: "fra1", Tags: []string{"web", "prod"}}, ds[0])

	// The documented filters and page size went out; name and tag_name never together.
	for _, r := range srv.Requests() {
		assert.False(t, r.Query.Has("name") && r.Query.Has("tag_name"), r.Query.Encode())
		assert.Equal(t, "200", r.Query.Get("per_page"))
	}
}

func TestDropletsEscapesInput(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	srv.AddDroplet(dotest.Droplet{Name: "web", Tags: []string{"web"}})
	_, err := c.Droplets(context.Background(), "web&tag_name=web", "")
	require.NoError(t, err)
	last := srv.Requests()[len(srv.Requests())-1]
	assert.Equal(t, "web&tag_name=web", last.Query.Get("name"))
	assert.False(t, last.Query.Has("tag_name"))
}

func TestDropletsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		failure   *dotest.Failure
		token     string
		wantCode  string
		status    int
		wantCalls int
		temporary bool
	}{
		{name: "bad token", token: "wrong", wantCode: "unauthorized", status: 401, wantCalls: 1},
		{name: "not found", failure: &dotest.Failure{Status: 404, ID: "not_found", Message: "The resource you were accessing could not be found."}, wantCode: "not_found", status: 404, wantCalls: 1},
		{name: "422", failure: &dotest.Failure{Status: 422, ID: "unprocessable_entity", Message: "bad tag"}, wantCode: "unprocessable_entity", status: 422, wantCalls: 1},
		{name: "rate limited throughout", failure: &dotest.Failure{Status: 429, Message: "API Rate limit exceeded.", RetryAfter: "0", Times: 10}, wantCode: "too_many_requests", status: 429, wantCalls: 4, temporary: true},
		{name: "server error throughout", failure: &dotest.Failure{Status: 500, ID: "server_error", Message: "Server was unable to give you a response.", Times: 10}, wantCode: "server_error", status: 500, wantCalls: 4, temporary: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := dotest.NewServer(t)
			o := srv.Options()
			if tt.token != "" {
				o.Token = tt.token
			}
			c, err := digitalocean.New(o)
			require.NoError(t, err)
			if tt.failure != nil {
				srv.Fail(*tt.failure)
			}
			_, err = c.Droplets(context.Background(), "web", "")
			var ae *adapters.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.status, ae.Status)
			assert.Equal(t, tt.wantCode, ae.Code)
			assert.Equal(t, "GET", ae.Method)
			assert.Equal(t, "/v2/droplets", ae.Path)
			assert.Contains(t, ae.Message, "(request req-")
			assert.Equal(t, tt.temporary, ae.Temporary())
			assert.Equal(t, tt.status == 404, adapters.IsNotFound(err))
			assert.Equal(t, tt.wantCalls, srv.CountRequests("GET", "/v2/droplets"))
			assert.NotContains(t, err.Error(), o.Token)
		})
	}
}

func TestDropletsRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		failure dotest.Failure
		calls   int
	}{
		{"503 then ok", dotest.Failure{Status: 503}, 2},
		{"429 with Retry-After seconds", dotest.Failure{Status: 429, RetryAfter: "0", Times: 2}, 3},
		{"429 with Retry-After date", dotest.Failure{Status: 429, RetryAfter: time.Now().UTC().Format(http.TimeFormat)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, c := setup(t)
			srv.AddDroplet(dotest.Droplet{Name: "web"})
			srv.Fail(tt.failure)
			ds, err := c.Droplets(context.Background(), "web", "")
			require.NoError(t, err)
			assert.Len(t, ds, 1)
			assert.Equal(t, tt.calls, srv.CountRequests("GET", "/v2/droplets"))
		})
	}
}

func TestRateLimitResetUsedOn429(t *testing.T) {
	t.Parallel()
	srv := dotest.NewServer(t)
	o := srv.Options()
	o.MaxRetries = -1
	c, err := digitalocean.New(o)
	require.NoError(t, err)
	srv.Fail(dotest.Failure{Status: 429}) // no Retry-After: RateLimit-Reset (unix time, a minute ahead) says how long
	_, err = c.Droplets(context.Background(), "", "")
	var ae *adapters.APIError
	require.ErrorAs(t, err, &ae)
	assert.Greater(t, ae.RetryAfter, 30*time.Second)
	assert.LessOrEqual(t, ae.RetryAfter, time.Minute)
}

func TestTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	srv := dotest.NewServer(t)
	srv.SetLatency(time.Hour)
	o := srv.Options()
	o.Timeout = 30 * time.Millisecond
	o.MaxRetries = 1
	c, err := digitalocean.New(o)
	require.NoError(t, err)
	_, err = c.Droplets(context.Background(), "web", "")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 2, srv.CountRequests("GET", "/v2/droplets"))

	o.Timeout = time.Minute
	c, err = digitalocean.New(o)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Droplets(ctx, "web", "")
		errc <- err
	}()
	require.Eventually(t, func() bool { return srv.CountRequests("GET", "/v2/droplets") == 3 }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled call did not return")
	}
}

func TestCallsRecordedWithoutToken(t *testing.T) {
	t.Parallel()
	_, c := setup(t)
	var mu sync.Mutex
	var calls []adapters.Call
	ctx := adapters.WithRecorder(context.Background(), adapters.RecorderFunc(func(_ context.Context, call adapters.Call) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call)
	}))
	_, err := c.Droplets(ctx, "web", "")
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, calls, 1)
	assert.Equal(t, adapters.Call{Adapter: "digitalocean", Method: "GET", Path: "/v2/droplets", Status: 200, Duration: calls[0].Duration, Attempt: 1}, calls[0])
}
