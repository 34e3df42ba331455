package executor_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/supabase/migrations"
)

func newHTTPTestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func postWake(t *testing.T, srv *httptest.Server, auth, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/wake", strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestHTTPEndpoints: health, readiness, metrics, and the wake endpoint's
// answers to bad requests.
func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon(fastConfig(""), nil)
	srv := newHTTPTestServer(t, d.Handler(executor.HTTPConfig{WebhookSecret: "s3cret-wake", SchemaVersion: migrations.SchemaVersion()}))
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return resp.StatusCode, b.String()
	}
	code, _ := get("/healthz")
	require.Equal(t, 200, code)
	code, body := get("/readyz")
	require.Equal(t, 200, code, body)
	code, body = get("/metrics")
	require.Equal(t, 200, code)
	require.Contains(t, body, "opsd_heartbeat_lag_seconds")

	code, _ = get("/v1/wake")
	require.Equal(t, 405, code)
	require.Equal(t, 400, postWake(t, srv, "Bearer s3cret-wake", "{not json"))
	require.Equal(t, 400, postWake(t, srv, "Bearer s3cret-wake", `{"table":"sessions"}`))
	require.Equal(t, 202, postWake(t, srv, "Bearer s3cret-wake", `{"pad":"`+strings.Repeat("x", executor.MaxWakeBody)+`"}`), "a long body is still a wake-up")
	require.Equal(t, 202, postWake(t, srv, "Bearer s3cret-wake", `{"run_id":"x"}`))

	// A readiness check against a schema the database does not have fails.
	srv2 := newHTTPTestServer(t, d.Handler(executor.HTTPConfig{SchemaVersion: "99999999999999"}))
	resp, err := srv2.Client().Get(srv2.URL + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 503, resp.StatusCode)
	require.Equal(t, 404, postWake(t, srv2, "Bearer anything", `{}`), "no secret configured: endpoint disabled")
}

func FuzzParseWakeBody(f *testing.F) {
	for _, s := range []string{"", "{}", `{"run_id":"x"}`, `{"type":"INSERT","table":"runs","record":{"lane":"A"}}`, "[", "null", `{"record":7}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = executor.ParseWakeBody(b)
	})
}
