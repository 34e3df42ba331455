package resttest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// rootServed is the test server answering at its root, as a real PostgREST
// does (no /rest/v1), over the database of TEST_DATABASE_URL.
func rootServed(t *testing.T, secret string) *httptest.Server {
	srv := postgresttest.New(t, pgtest.AdminURL(), secret)
	root := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = postgresttest.Prefix[:len(postgresttest.Prefix)-1] + r.URL.Path
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(root.Close)
	return root
}

// TestGivenPostgREST: with TEST_POSTGREST_URL, Real is that PostgREST under
// /rest/v1, over TEST_DATABASE_URL's database, migrated and emptied before
// each test.
func TestGivenPostgREST(t *testing.T) {
	const secret = "resttest-given-secret-of-at-least-32-characters"
	root := rootServed(t, secret)
	t.Setenv(URLVariable, root.URL)
	t.Setenv(SecretVariable, secret)
	require.NoError(t, Available(Real))
	for i := range 2 { // a test at a time holds the database: one subtest each
		t.Run("pass", func(t *testing.T) { givenPass(t, i) })
	}
}

func givenPass(t *testing.T, i int) {
	ctx := context.Background()
	p := Open(t, Real)
	assert.Nil(t, p.Server, "a real PostgREST has no fault injection")
	var runs int
	require.NoError(t, p.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM runs`).Scan(&runs))
	assert.Zero(t, runs, "pass %d: the runs table is emptied first", i)
	req, err := http.NewRequest(http.MethodPost, p.URL+postgresttest.Prefix+"runs",
		strings.NewReader(`{"env":"dev","kind":"healthcheck","lane":"A"}`))
	require.NoError(t, err)
	req.Header.Set("apikey", p.ServiceKey())
	req.Header.Set("Authorization", "Bearer "+p.ServiceKey())
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.NoError(t, p.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM runs`).Scan(&runs))
	assert.Equal(t, 1, runs, "the insert went through the given PostgREST to TEST_DATABASE_URL's database")
}

func TestAvailable(t *testing.T) {
	t.Setenv(URLVariable, "")
	t.Setenv("PATH", t.TempDir())
	require.NoError(t, Available(TestServer))
	err := Available(Real)
	require.Error(t, err)
	assert.Contains(t, err.Error(), URLVariable)
}
