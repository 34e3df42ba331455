package supabasetest_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/opscontrolroom/opsd/adapters/supabaseadapter/supabasetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestGatewayKeyCheck(t *testing.T) {
	t.Parallel()
	srv := supabasetest.New(t)
	tests := []struct {
		name, apikey, auth string
		status             int
		body               string
	}{
		{name: "both", apikey: srv.Key, auth: "Bearer " + srv.Key, status: 200},
		{name: "apikey only", apikey: srv.Key, status: 200},
		{name: "no apikey", status: 401, body: "No API key found in request"},
		{name: "wrong apikey", apikey: "x", status: 401, body: "Invalid API key"},
		{name: "wrong bearer", apikey: srv.Key, auth: "Bearer x", status: 401, body: "PGRST301"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/auth/v1/health", nil)
			require.NoError(t, err)
			if tt.apikey != "" {
				req.Header.Set("apikey", tt.apikey)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Contains(t, string(b), tt.body)
		})
	}
}

func TestUnknownRoute(t *testing.T) {
	t.Parallel()
	srv := supabasetest.New(t)
	req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/functions/v1/nope", nil)
	require.NoError(t, err)
	req.Header.Set("apikey", srv.Key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, 404, resp.StatusCode)
}
