package supabase_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/opscontrolroom/opsd/internal/resttest"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
)

// restJWTSecret signs the tokens of the test PostgREST servers.
const restJWTSecret = "storetest-jwt-secret-of-at-least-32-characters"

// openPGStore opens a pgstore.Store on url, closed with the test.
func openPGStore(t testing.TB, url string) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := pgstore.New(ctx, pgstore.Config{URL: url, MaxConns: 4, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func pgCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pgPtr[T any](v T) *T { return &v }

// eachPostgREST runs fn once per kind of PostgREST (the test server, a real
// one), skipping a kind that is not available.
func eachPostgREST(t *testing.T, fn func(t *testing.T, kind resttest.Kind)) {
	for _, kind := range resttest.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			if err := resttest.Available(kind); err != nil {
				t.Skip(err)
			}
			fn(t, kind)
		})
	}
}

// apikeyTransport replaces the apikey header, keeping the bearer token.
type apikeyTransport struct{ key string }

func (a apikeyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("apikey", a.key)
	return http.DefaultTransport.RoundTrip(r)
}
