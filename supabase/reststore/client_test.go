package reststore_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
	"github.com/opscontrolroom/opsd/supabase/reststore"
)

// restServer is a PostgREST test server on a fresh migrated database.
func restServer(t *testing.T, opts ...postgresttest.Option) *postgresttest.Server {
	t.Helper()
	return postgresttest.New(t, pgtest.NewDB(t).URL, restJWTSecret, opts...)
}

func newStore(t *testing.T, cfg reststore.Config) *reststore.Store {
	t.Helper()
	s, err := reststore.New(cfg)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func TestNewRESTStoreValidates(t *testing.T) {
	for _, cfg := range []reststore.Config{
		{URL: "", ServiceRoleKey: "k"},
		{URL: "ftp://example.com", ServiceRoleKey: "k"},
		{URL: "https://", ServiceRoleKey: "k"},
		{URL: "https://ref.supabase.co"},
	} {
		_, err := reststore.New(cfg)
		assert.Error(t, err, "%+v", cfg)
	}
}

func TestRESTRetriesWhatIsSafe(t *testing.T) {
	t.Parallel()
	srv := restServer(t)
	core, logs := observer.New(zap.DebugLevel)
	key := srv.ServiceKey()
	st := newStore(t, reststore.Config{URL: srv.URL, ServiceRoleKey: key, MaxRetries: 2, Logger: zap.New(core)})
	ctx := context.Background()
	run, err := st.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck"})
	require.NoError(t, err)
	before := srv.Stats()

	// Reads are retried through 5xx answers.
	srv.Inject(postgresttest.Fault{Kind: postgresttest.FaultStatus, Status: 503, Path: "runs", Times: 2})
	_, err = st.GetRun(ctx, run.ID)
	require.NoError(t, err)
	assert.EqualValues(t, 2, srv.Stats().Status-before.Status)

	// 429 with Retry-After is waited out.
	srv.Inject(postgresttest.Fault{Kind: postgresttest.FaultRateLimit, RetryAfter: time.Second, Path: "rpc/ping"})
	start := time.Now()
	require.NoError(t, st.Ping(ctx))
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "Retry-After honoured")

	// A Retry-After longer than a call may wait fails at once.
	srv.Inject(postgresttest.Fault{Kind: postgresttest.FaultRateLimit, RetryAfter: time.Hour, Path: "rpc/ping"})
	err = st.Ping(ctx)
	assert.ErrorIs(t, err, executor.ErrTransient)
	assert.True(t, executor.Retryable(err))

	// An outage outlasting the retries fails after MaxRetries+1 attempts.
	srv.Outage(time.Hour)
	rejected := srv.Stats().OutageRejected
	err = st.Ping(ctx)
	assert.ErrorIs(t, err, executor.ErrTransient)
	var se *executor.StoreError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusServiceUnavailable, se.Status)
	assert.EqualValues(t, 3, srv.Stats().OutageRejected-rejected)

	// The caller's deadline ends the retries promptly.
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start = time.Now()
	err = st.Ping(dctx)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
	srv.ClearFaults()

	// A dropped connection: an idempotent batch is retried, a plain insert is not.
	claimed, err := st.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: run.Lane, Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	lease := executor.Lease{RunID: run.ID, Worker: "w1", Attempt: claimed[0].Attempt}
	srv.Inject(postgresttest.Fault{Kind: postgresttest.FaultDrop, Path: "rpc/append_run_rows"})
	refused, err := st.AppendRows(ctx, "w1", executor.Rows{Events: []executor.Event{{RunID: run.ID, Seq: 1, Level: "info", Source: "System", Message: "m", Attempt: lease.Attempt}}})
	require.NoError(t, err)
	require.Empty(t, refused)
	executed := srv.Stats().Executed
	srv.Inject(postgresttest.Fault{Kind: postgresttest.FaultDrop, Path: "runs", Method: "POST"})
	_, err = st.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck", Intent: "dropped"})
	assert.ErrorIs(t, err, executor.ErrTransient)
	assert.Equal(t, executed, srv.Stats().Executed, "the dropped submit was not sent again")
	srv.Inject(postgresttest.Fault{Kind: postgresttest.FaultStatus, Status: 500, Path: "rpc/put_artifact"})
	err = st.PutArtifact(ctx, lease, executor.Artifact{RunID: run.ID, Kind: "link", Title: "t", Value: "v"})
	assert.ErrorIs(t, err, executor.ErrTransient)
	assert.EqualValues(t, 1, srv.Stats().Status-before.Status-2, "a plain insert answered 500 is not repeated")

	retries := logs.FilterMessage("supabase REST call failed, retrying").All()
	require.NotEmpty(t, retries)
	assert.Equal(t, "get_run", retries[0].ContextMap()["op"])
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			s, _ := v.(string)
			assert.NotContains(t, s, key, "field %s of %q carries the key", k, e.Message)
		}
	}
	assert.NotContains(t, err.Error(), key)
}

func TestRESTTimeoutPerAttempt(t *testing.T) {
	t.Parallel()
	srv := restServer(t)
	st := newStore(t, reststore.Config{URL: srv.URL, ServiceRoleKey: srv.ServiceKey(), Timeout: 300 * time.Millisecond})
	srv.Inject(postgresttest.Fault{Kind: postgresttest.FaultLatency, Delay: 10 * time.Second, Path: "rpc/ping"})
	start := time.Now()
	require.NoError(t, st.Ping(context.Background()), "the slow attempt times out and the retry succeeds")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestRESTRetriesUnsentInserts: a plain insert is retried when it failed
// before it left (the first dial fails).
func TestRESTRetriesUnsentInserts(t *testing.T) {
	t.Parallel()
	srv := restServer(t)
	var dials atomic.Int32
	tr := reststore.NewRESTTransportForTest()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
		}
		return dial(ctx, network, addr)
	}
	st := newStore(t, reststore.Config{URL: srv.URL, ServiceRoleKey: srv.ServiceKey(), HTTPClient: &http.Client{Transport: tr}})
	r, err := st.SubmitRun(context.Background(), executor.NewRun{Env: "dev", Kind: "healthcheck"})
	require.NoError(t, err)
	assert.NotEmpty(t, r.ID)
	assert.EqualValues(t, 2, dials.Load())
}

func TestRESTHTTP2(t *testing.T) {
	t.Parallel()
	srv := restServer(t, postgresttest.WithHTTP2())
	tr := reststore.NewRESTTransportForTest()
	tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	st := newStore(t, reststore.Config{URL: srv.URL, ServiceRoleKey: srv.ServiceKey(), HTTPClient: &http.Client{Transport: tr}})
	for range 3 {
		require.NoError(t, st.Ping(context.Background()))
	}
	assert.EqualValues(t, 3, srv.Stats().HTTP2, "HTTP/2 is used when offered, even with a custom TLS config")
}

// TestRESTErrorMapping: PostgREST's documented error answers (and a
// gateway's HTML) become the store's error kinds.
func TestRESTErrorMapping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status int
		body   string
		kind   error
		code   string
	}{
		{400, `{"code":"22P02","message":"invalid input syntax for type uuid","details":null,"hint":null}`, executor.ErrInvalidInput, "22P02"},
		{400, `{"code":"P0001","message":"raised","details":"d","hint":"h"}`, executor.ErrInvalidInput, "P0001"},
		{400, `{"code":"23514","message":"check","details":null,"hint":null}`, executor.ErrInvalidInput, "23514"},
		{401, `{"code":"42501","message":"permission denied for table run_events","details":null,"hint":null}`, executor.ErrPermission, "42501"},
		{401, `{"code":"PGRST301","message":"JWT expired","details":null,"hint":null}`, executor.ErrPermission, "PGRST301"},
		{403, `{"code":"42501","message":"new row violates row-level security policy","details":null,"hint":null}`, executor.ErrPermission, "42501"},
		{404, `{"code":"PGRST202","message":"Could not find the function","details":null,"hint":null}`, executor.ErrNotFound, "PGRST202"},
		{404, `{"code":"PGRST205","message":"Could not find the table","details":null,"hint":null}`, executor.ErrNotFound, "PGRST205"},
		{406, `{"code":"PGRST116","message":"Cannot coerce the result to a single JSON object","details":"The result contains 0 rows","hint":null}`, executor.ErrNotFound, "PGRST116"},
		{409, `{"code":"23505","message":"duplicate key","details":null,"hint":null}`, executor.ErrConflict, "23505"},
		{409, `{"code":"23503","message":"foreign key","details":null,"hint":null}`, executor.ErrConflict, "23503"},
		{300, `{"code":"PGRST203","message":"Could not choose the best candidate function","details":null,"hint":null}`, executor.ErrInvalidInput, "PGRST203"},
		{500, `{"code":"40001","message":"could not serialize access","details":null,"hint":null}`, executor.ErrTransient, "40001"},
		{500, `{"code":"40P01","message":"deadlock detected","details":null,"hint":null}`, executor.ErrTransient, "40P01"},
		{503, `{"code":"PGRST001","message":"Database client error","details":null,"hint":null}`, executor.ErrTransient, "PGRST001"},
		{504, `{"code":"PGRST003","message":"Timed out acquiring connection","details":null,"hint":null}`, executor.ErrTransient, "PGRST003"},
		{502, `<html><body>Bad Gateway</body></html>`, executor.ErrTransient, "502"},
		{429, ``, executor.ErrTransient, "429"},
	}
	for _, c := range cases {
		stub := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(c.status)
			_, _ = w.Write([]byte(c.body))
		})
		st := newStore(t, reststore.Config{URL: stub, ServiceRoleKey: "k", MaxRetries: -1})
		err := st.Ping(context.Background())
		var se *executor.StoreError
		require.ErrorAs(t, err, &se, "%d %s", c.status, c.body)
		assert.ErrorIs(t, err, c.kind, "%d %s", c.status, c.body)
		assert.Equal(t, c.code, se.Code)
		assert.Equal(t, c.status, se.Status)
		assert.Equal(t, "ping", se.Op)
		assert.NotEmpty(t, se.Message)
		if c.code == "502" {
			assert.Contains(t, se.Message, "Bad Gateway")
		}
	}
}

// TestRESTRequests: the requests sent are PostgREST's documented ones.
func TestRESTRequests(t *testing.T) {
	t.Parallel()
	type seen struct{ method, path, query, prefer, apikey, auth, body string }
	reqs := make(chan seen, 16)
	stub := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Prefer"), r.Header.Get("apikey"), r.Header.Get("Authorization"), string(b)}
		switch {
		case r.URL.Path == "/rest/v1/runs" && r.Method == "POST":
			w.WriteHeader(201)
			_, _ = w.Write([]byte(`[{"id":"r1","status":"queued","env":"dev","kind":"healthcheck","lane":"A","created_at":"2026-01-01T00:00:00+00:00"}]`))
		case r.Method == "POST" && !strings.HasPrefix(r.URL.Path, "/rest/v1/rpc/"):
			w.WriteHeader(201)
		default:
			_, _ = w.Write([]byte(`[]`))
		}
	})
	st := newStore(t, reststore.Config{URL: stub + "/", ServiceRoleKey: "service-key"})
	ctx := context.Background()
	_, err := st.AppendRows(ctx, "w1", executor.Rows{
		Events: []executor.Event{{RunID: "r1", Seq: 1, Level: "info", Source: "System", Message: "m", Attempt: 1}},
		Steps:  []executor.Step{{RunID: "r1", Idx: 0, StepID: "s", Title: "S", Attempt: 1}}})
	require.NoError(t, err)
	_, err = st.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck"})
	require.NoError(t, err)
	_, err = st.ListEvents(ctx, "r1", 7, 50)
	require.NoError(t, err)
	_, err = st.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w1", Lane: "A", Limit: 2})
	require.NoError(t, err)

	rows := <-reqs
	assert.Equal(t, seen{"POST", "/rest/v1/rpc/append_run_rows", "", "", "service-key", "Bearer service-key", rows.body}, rows,
		"events and steps go in one fenced call")
	var args struct {
		Worker string            `json:"p_worker"`
		Events []json.RawMessage `json:"p_events"`
		Steps  []json.RawMessage `json:"p_steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(rows.body), &args))
	assert.Equal(t, "w1", args.Worker)
	require.Len(t, args.Events, 1)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(args.Events[0], &ev))
	assert.Equal(t, map[string]any{"run_id": "r1", "attempt": 1.0, "seq": 1.0, "ts": ev["ts"], "level": "info", "source": "System",
		"message": "m", "data": nil, "phase": nil}, ev)
	require.Len(t, args.Steps, 1)
	assert.Contains(t, string(args.Steps[0]), `"kind":"system"`)
	assert.Contains(t, string(args.Steps[0]), `"attempt":1`)
	submit := <-reqs
	assert.Equal(t, "return=representation", submit.prefer)
	assert.JSONEq(t, `{"env":"dev","kind":"healthcheck","intent":""}`, submit.body)
	list := <-reqs
	assert.Equal(t, "GET", list.method)
	assert.Equal(t, "limit=50&order=seq.asc&run_id=eq.r1&select=run_id%2Cseq%2Cts%2Clevel%2Csource%2Cmessage%2Cdata%2Cphase&seq=gt.7", list.query)
	claim := <-reqs
	assert.Equal(t, "/rest/v1/rpc/claim_run", claim.path)
	assert.Contains(t, claim.body, `"p_claim_token":"`, "a claim always carries a token")
	assert.Contains(t, claim.body, `"p_limit":2`)
}

func stubServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}
