package supabase_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
	"github.com/opscontrolroom/opsd/supabase"
	"github.com/opscontrolroom/opsd/supabase/storetest"
)

const restJWTSecret = "storetest-jwt-secret-of-at-least-32-characters"

// restEnv is a RESTStore (service-role key) and an anon-key RESTStore over
// a PostgREST test server on a fresh migrated database.
func restEnv(t *testing.T) (*storetest.Env, *postgresttest.Server) {
	t.Helper()
	db := pgtest.NewDB(t)
	srv := postgresttest.New(t, db.URL, restJWTSecret)
	open := func(key string) *supabase.RESTStore {
		s, err := supabase.NewRESTStore(supabase.RESTConfig{URL: srv.URL, ServiceRoleKey: key})
		require.NoError(t, err)
		t.Cleanup(s.Close)
		return s
	}
	return &storetest.Env{
		Store: open(srv.ServiceKey()),
		DB:    db.Pool,
		Anon:  open(srv.AnonKey()),
		LoseNextResponse: func(op string) {
			srv.Inject(postgresttest.Fault{Kind: postgresttest.FaultLoseResponse, Path: op})
		},
	}, srv
}

func TestRESTStoreContract(t *testing.T) {
	storetest.Run(t, storetest.HarnessFunc(func(t *testing.T) *storetest.Env {
		env, _ := restEnv(t)
		return env
	}))
}

// TestRESTBrowserKeysCannotWriteEvents: with the anon key (and with a
// signed-in user's token) run_events cannot be written through REST:
// PostgREST answers 401 for anon and 403 for a user, both ErrPermission.
func TestRESTBrowserKeysCannotWriteEvents(t *testing.T) {
	t.Parallel()
	env, srv := restEnv(t)
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
	userStore, err := supabase.NewRESTStore(supabase.RESTConfig{URL: srv.URL, ServiceRoleKey: user,
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
