package postgresttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Prefix is where the API is mounted, as on Supabase.
const Prefix = "/rest/v1/"

// maxBody bounds request bodies.
const maxBody = 16 << 20

// Server is a running PostgREST-compatible test server. The embedded
// httptest.Server gives URL (the project URL; the API is at URL+"/rest/v1")
// and Client.
type Server struct {
	*httptest.Server

	pool    *pgxpool.Pool
	secret  string
	schema  *schemaCache
	faults  faults
	closing chan struct{}
	once    sync.Once
}

// Option configures New.
type Option func(*httptest.Server)

// WithHTTP2 serves HTTPS with HTTP/2 enabled instead of plain HTTP/1.1.
// Server.Client trusts the test certificate.
func WithHTTP2() Option {
	return func(s *httptest.Server) { s.EnableHTTP2 = true }
}

// New starts a server over the PostgreSQL database at databaseURL, verifying
// JWTs with jwtSecret. It connects as the URL's user (a superuser in tests)
// and impersonates each request's role. The server is closed at t's cleanup.
func New(t testing.TB, databaseURL, jwtSecret string, opts ...Option) *Server {
	t.Helper()
	s, err := Start(databaseURL, jwtSecret, opts...)
	if err != nil {
		t.Fatalf("postgresttest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start is New outside a test (cmd/opsbench): the caller closes the server.
func Start(databaseURL, jwtSecret string, opts ...Option) (*Server, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s := &Server{pool: pool, secret: jwtSecret, schema: newSchemaCache(pool), closing: make(chan struct{})}
	s.Server = httptest.NewUnstartedServer(s)
	for _, o := range opts {
		o(s.Server)
	}
	if s.Server.EnableHTTP2 {
		s.Server.StartTLS()
	} else {
		s.Server.Start()
	}
	return s, nil
}

// Close stops the server, waits for requests in flight and closes the pool.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.Server.Close()
		s.pool.Close()
	})
}

// response is an answer built in full before it is sent, so that it can be
// lost after the transaction committed.
type response struct {
	status int
	header http.Header
	body   []byte
}

// ServeHTTP applies any injected fault, then serves the request as PostgREST.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, Prefix)
	path = strings.Trim(path, "/")
	fault, outage := s.faults.next(r, path)
	if outage {
		send(w, errorResponse(newAPIError(http.StatusServiceUnavailable, "PGRST001",
			"Database client error. Retrying the connection.", "injected outage", ""), ""))
		return
	}
	if fault != nil {
		switch fault.Kind {
		case FaultLatency:
			s.faults.count(func(st *Stats) { st.Delayed++ })
			select {
			case <-time.After(fault.Delay):
			case <-r.Context().Done():
				return
			case <-s.closing:
				return
			}
		case FaultStatus, FaultRateLimit:
			send(w, faultResponse(fault, &s.faults))
			return
		case FaultDrop:
			s.faults.count(func(st *Stats) { st.Dropped++ })
			drop(w)
			return
		}
	}
	if !ok {
		send(w, errorResponse(newAPIError(http.StatusNotFound, "", "no Route matched with those values", "", ""), ""))
		return
	}
	resp := s.serve(r, path)
	if fault != nil && fault.Kind == FaultLoseResponse {
		s.faults.count(func(st *Stats) { st.LostResponses++ })
		drop(w)
		return
	}
	send(w, resp)
}

func faultResponse(f *Fault, st *faults) *response {
	var resp *response
	if f.Kind == FaultRateLimit {
		st.count(func(s *Stats) { s.RateLimited++ })
		resp = errorResponse(newAPIError(http.StatusTooManyRequests, "", "Too Many Requests", "injected rate limit", ""), "")
		ra := int(f.RetryAfter.Round(time.Second) / time.Second)
		if ra < 1 {
			ra = 1
		}
		resp.header.Set("Retry-After", strconv.Itoa(ra))
	} else {
		st.count(func(s *Stats) { s.Status++ })
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		resp = errorResponse(newAPIError(status, "PGRST001", "Database client error", "injected fault", ""), "")
	}
	if f.Body != "" {
		resp.body = []byte(f.Body)
	}
	return resp
}

func send(w http.ResponseWriter, resp *response) {
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.status)
	if len(resp.body) > 0 {
		_, _ = w.Write(resp.body)
	}
}

// serve authenticates the request and runs it in one transaction.
func (s *Server) serve(r *http.Request, path string) *response {
	p, aerr := s.authenticate(r)
	if aerr != nil {
		return errorResponse(aerr, "")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return errorResponse(errBadRequest("PGRST102", "could not read the body", err.Error()), p.role)
	}
	singular := strings.Contains(r.Header.Get("Accept"), "application/vnd.pgrst.object")
	ctx := r.Context()

	if fn, isRPC := strings.CutPrefix(path, "rpc/"); isRPC {
		if r.Method != http.MethodPost {
			return errorResponse(newAPIError(http.StatusMethodNotAllowed, "PGRST101",
				"Only POST is supported here for functions", "", ""), p.role)
		}
		_, keys, aerr := rpcArgs(body)
		if aerr != nil {
			return errorResponse(aerr, p.role)
		}
		f, aerr, err := s.schema.function(ctx, fn, keys)
		if aerr != nil || err != nil {
			return errorResponse(errors.Join(aerrOrNil(aerr), err), p.role)
		}
		return s.inTx(ctx, p, r, !f.volatile, func(tx pgx.Tx) (*response, error) {
			return serveRPC(ctx, tx, f, keys, body, singular)
		})
	}

	if path == "" || strings.Contains(path, "/") {
		return errorResponse(errUnknownTable(path), p.role)
	}
	t, err := s.schema.table(ctx, path, false)
	if err == nil && t == nil {
		t, err = s.schema.table(ctx, path, true)
	}
	if err != nil {
		return errorResponse(err, p.role)
	}
	if t == nil {
		return errorResponse(errUnknownTable(path), p.role)
	}
	values := r.URL.Query()
	for key := range values {
		if _, known := t.column(key); !known && !reserved[key] {
			// a column added since the table was cached
			if t, err = s.schema.table(ctx, path, true); err != nil {
				return errorResponse(err, p.role)
			}
			break
		}
	}
	req := &tableRequest{
		method:   r.Method,
		table:    t,
		values:   values,
		prefer:   parsePrefer(r.Header.Values("Prefer")),
		singular: singular,
		body:     body,
	}
	readOnly := r.Method == http.MethodGet || r.Method == http.MethodHead
	return s.inTx(ctx, p, r, readOnly, func(tx pgx.Tx) (*response, error) {
		return serveTable(ctx, tx, req)
	})
}

func aerrOrNil(a *apiError) error {
	if a == nil {
		return nil
	}
	return a
}

// inTx runs fn as PostgREST runs a request: one transaction, the role
// impersonated with SET LOCAL ROLE and the JWT claims published as
// transaction-scoped settings, committed unless fn fails.
func (s *Server) inTx(ctx context.Context, p *principal, r *http.Request, readOnly bool, fn func(pgx.Tx) (*response, error)) *response {
	mode := pgx.ReadWrite
	if readOnly {
		mode = pgx.ReadOnly
	}
	s.faults.count(func(st *Stats) { st.Executed++ })
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: mode})
	if err != nil {
		return errorResponse(err, p.role)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+quote(p.role)); err != nil {
		return errorResponse(err, p.role)
	}
	_, err = tx.Exec(ctx, `SELECT set_config('request.jwt.claims', $1, true),
		set_config('request.jwt.claim.sub', $2, true), set_config('request.jwt.claim.role', $3, true),
		set_config('request.method', $4, true), set_config('request.path', $5, true)`,
		string(p.claims), p.sub, p.role, r.Method, r.URL.Path)
	if err != nil {
		return errorResponse(err, p.role)
	}
	resp, err := fn(tx)
	if err != nil {
		return errorResponse(err, p.role)
	}
	if err := tx.Commit(ctx); err != nil {
		return errorResponse(err, p.role)
	}
	s.faults.count(func(st *Stats) { st.Committed++ })
	return resp
}

// String describes the server for test logs.
func (s *Server) String() string { return fmt.Sprintf("postgresttest at %s%s", s.URL, Prefix) }
