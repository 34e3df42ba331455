package supabaseadapter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters"
	sb "github.com/opscontrolroom/opsd/adapters/supabaseadapter"
	"github.com/opscontrolroom/opsd/adapters/supabaseadapter/supabasetest"
)

func newHealthClient(t *testing.T, srv *supabasetest.Server, key string) *sb.Client {
	t.Helper()
	c, err := sb.New(adapters.Options{
		Token: key, BaseURL: srv.URL,
		// MaxBackoff leaves room for a 1 s Retry-After: a longer one would be
		// handed back to the caller instead of waited out inline.
		Timeout: 5 * time.Second, MaxRetries: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Second,
	})
	require.NoError(t, err)
	return c
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, o := range []adapters.Options{{}, {Token: "k"}, {BaseURL: "https://x.supabase.co"}} {
		_, err := sb.New(o)
		require.ErrorIs(t, err, adapters.ErrNotConfigured)
	}
	_, err := sb.New(adapters.Options{Token: "k", BaseURL: "x.supabase.co"})
	require.Error(t, err, "a URL without scheme")
	require.NotErrorIs(t, err, adapters.ErrNotConfigured)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	type want struct {
		failed []string
		status map[string]int
		code   map[string]string
	}
	tests := []struct {
		name  string
		key   string // default the server's
		setup func(*supabasetest.Server)
		want  want
	}{
		{name: "healthy", setup: func(*supabasetest.Server) {},
			want: want{status: map[string]int{sb.CheckREST: 200, sb.CheckAuth: 200, sb.CheckStorage: 200, sb.CheckPing: 200}}},
		{name: "auth down", setup: func(s *supabasetest.Server) { s.SetDown(supabasetest.Auth, 503) },
			want: want{failed: []string{sb.CheckAuth}, status: map[string]int{sb.CheckAuth: 503}}},
		{name: "storage down", setup: func(s *supabasetest.Server) { s.SetDown(supabasetest.Storage, 502) },
			want: want{failed: []string{sb.CheckStorage}, status: map[string]int{sb.CheckStorage: 502}}},
		{name: "postgrest down fails rest and ping", setup: func(s *supabasetest.Server) { s.SetDown(supabasetest.REST, 503) },
			want: want{failed: []string{sb.CheckREST, sb.CheckPing}, status: map[string]int{sb.CheckREST: 503, sb.CheckPing: 503}}},
		{name: "ping() missing", setup: func(s *supabasetest.Server) { s.RemovePing() },
			want: want{failed: []string{sb.CheckPing}, status: map[string]int{sb.CheckPing: 404}, code: map[string]string{sb.CheckPing: "PGRST202"}}},
		{name: "ping() answers something else", setup: func(s *supabasetest.Server) { s.SetPingAnswer(`"ping"`) },
			want: want{failed: []string{sb.CheckPing}, status: map[string]int{sb.CheckPing: 200}}},
		{name: "wrong key", key: "nope", setup: func(*supabasetest.Server) {},
			want: want{failed: []string{sb.CheckREST, sb.CheckAuth, sb.CheckStorage, sb.CheckPing},
				status: map[string]int{sb.CheckREST: 401, sb.CheckAuth: 401, sb.CheckStorage: 401, sb.CheckPing: 401}}},
		{name: "transient 5xx and 429 are retried", setup: func(s *supabasetest.Server) {
			s.Fail(supabasetest.Failure{Path: "/auth/v1/health", Status: 500, Times: 2})
			s.Fail(supabasetest.Failure{Path: "/rest/v1/rpc/ping", Status: 429, RetryAfter: time.Second})
		}, want: want{status: map[string]int{sb.CheckAuth: 200, sb.CheckPing: 200}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := supabasetest.New(t)
			tt.setup(srv)
			key := srv.Key
			if tt.key != "" {
				key = tt.key
			}
			rep := newHealthClient(t, srv, key).Health(ctx(t))

			require.Len(t, rep.Checks, 4)
			assert.Equal(t, []string{sb.CheckREST, sb.CheckAuth, sb.CheckStorage, sb.CheckPing},
				[]string{rep.Checks[0].Name, rep.Checks[1].Name, rep.Checks[2].Name, rep.Checks[3].Name})
			assert.Equal(t, tt.want.failed, rep.Failed())
			assert.Equal(t, len(tt.want.failed) == 0, rep.OK())
			for _, c := range rep.Checks {
				assert.Equal(t, c.Err == nil, c.OK, c.Name)
				assert.Positive(t, c.Latency, c.Name)
				if st, ok := tt.want.status[c.Name]; ok {
					assert.Equal(t, st, c.Status, c.Name)
				}
				var api *adapters.APIError
				if c.Status >= 400 {
					require.ErrorAs(t, c.Err, &api, c.Name)
					assert.Equal(t, "supabase", api.Adapter)
					assert.NotEmpty(t, api.Message, c.Name)
					assert.Equal(t, tt.want.code[c.Name], api.Code, c.Name)
				}
			}
		})
	}
}

func TestHealthSlowAndCancelled(t *testing.T) {
	t.Parallel()
	srv := supabasetest.New(t)
	srv.Fail(supabasetest.Failure{Path: "/storage/", Delay: time.Minute, Times: -1})
	c := newHealthClient(t, srv, srv.Key)

	// Generous, so the fast checks finish under -race on a busy machine; the
	// slow one would take a minute.
	hctx, cancel := context.WithTimeout(ctx(t), time.Second)
	defer cancel()
	rep := c.Health(hctx)
	assert.Equal(t, []string{sb.CheckStorage}, rep.Failed(), "the others answered in time")
	st := rep.Checks[2]
	assert.Zero(t, st.Status)
	assert.True(t, errors.Is(st.Err, context.DeadlineExceeded), "got %v", st.Err)
}

func TestHealthSendsKeys(t *testing.T) {
	t.Parallel()
	srv := supabasetest.New(t)
	rep := newHealthClient(t, srv, srv.Key).Health(ctx(t))
	require.True(t, rep.OK())
	assert.ElementsMatch(t, []string{
		"GET /rest/v1/", "GET /auth/v1/health", "GET /storage/v1/status", "POST /rest/v1/rpc/ping",
	}, srv.Requests())
}
