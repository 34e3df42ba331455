package reststore_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
	"github.com/opscontrolroom/opsd/internal/resttest"
	"github.com/opscontrolroom/opsd/supabase/reststore"
	"github.com/opscontrolroom/opsd/supabase/storetest"
)

const restJWTSecret = "storetest-jwt-secret-of-at-least-32-characters"

// restEnv is a Store (service-role key) and an anon-key Store over
// a PostgREST of kind (the test server, or a real one) on a fresh migrated
// database. Only the test server can lose a response on demand.
func restEnv(t *testing.T, kind resttest.Kind) (*storetest.Env, *resttest.PostgREST) {
	t.Helper()
	p := resttest.Open(t, kind)
	open := func(key string) *reststore.Store {
		s, err := reststore.New(reststore.Config{URL: p.URL, ServiceRoleKey: key})
		require.NoError(t, err)
		t.Cleanup(s.Close)
		return s
	}
	env := &storetest.Env{Store: open(p.ServiceKey()), DB: p.DB.Pool, Anon: open(p.AnonKey())}
	if srv := p.Server; srv != nil {
		env.LoseNextResponse = func(op string) {
			srv.Inject(postgresttest.Fault{Kind: postgresttest.FaultLoseResponse, Path: op})
		}
	}
	return env, p
}

// eachPostgREST runs fn as a subtest per PostgREST kind; the real one is
// skipped, saying how to enable it, when none is available.
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

func TestRESTStoreContract(t *testing.T) {
	eachPostgREST(t, func(t *testing.T, kind resttest.Kind) {
		h := storetest.HarnessFunc(func(t *testing.T) *storetest.Env {
			env, _ := restEnv(t, kind)
			return env
		})
		storetest.RunDaemon(t, h)
		storetest.RunOperator(t, h)
	})
}

// TestRESTBrowserKeysCannotWriteEvents: with the anon key (and with a
// signed-in user's token) run_events cannot be written through REST:
// PostgREST answers 401 for anon and 403 for a user, both ErrPermission.
func TestRESTBrowserKeysCannotWriteEvents(t *testing.T) {
	t.Parallel()
	eachPostgREST(t, func(t *testing.T, kind resttest.Kind) {
		t.Parallel()
		testBrowserKeysCannotWriteEvents(t, kind)
	})
}

func testBrowserKeysCannotWriteEvents(t *testing.T, kind resttest.Kind) {
	env, srv := restEnv(t, kind)
	ctx := context.Background()
	run, err := env.Store.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck"})
	require.NoError(t, err)
	claimed, err := env.Store.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: run.Lane, Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	event := executor.Rows{Events: []executor.Event{{RunID: run.ID, Seq: 1, Level: executor.LevelInfo, Source: "System",
		Message: "forged", Attempt: claimed[0].Attempt}}}

	_, err = env.Anon.AppendRows(ctx, "w1", event)
	var se *executor.StoreError
	require.True(t, errors.As(err, &se), "want a StoreError, got %v", err)
	assert.ErrorIs(t, err, executor.ErrPermission)
	assert.Equal(t, http.StatusUnauthorized, se.Status)
	assert.Equal(t, "42501", se.Code)

	user := srv.UserToken("5b0c2f3e-8a61-4d7e-9f43-2a1c6b7d8e90")
	// Supabase clients send the anon key as apikey and the user's token as bearer.
	userStore, err := reststore.New(reststore.Config{URL: srv.URL, ServiceRoleKey: user,
		HTTPClient: &http.Client{Transport: apikeyTransport{key: srv.AnonKey()}}})
	require.NoError(t, err)
	defer userStore.Close()
	_, err = userStore.AppendRows(ctx, "w1", event)
	require.True(t, errors.As(err, &se), "want a StoreError, got %v", err)
	assert.ErrorIs(t, err, executor.ErrPermission)
	assert.Equal(t, http.StatusForbidden, se.Status)

	var n int
	require.NoError(t, env.DB.QueryRow(ctx, `SELECT count(*) FROM run_events`).Scan(&n))
	assert.Zero(t, n)
	refused, err := env.Store.AppendRows(ctx, "w1", event)
	require.NoError(t, err, "the service role may, for the worker that holds the run")
	assert.Empty(t, refused)
}

// apikeyTransport replaces the apikey header, keeping the bearer token.
type apikeyTransport struct{ key string }

func (a apikeyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("apikey", a.key)
	return http.DefaultTransport.RoundTrip(r)
}
