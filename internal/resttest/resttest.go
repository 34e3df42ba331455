// Package resttest gives a test a PostgREST over a migrated database: the
// PostgREST-compatible test server (internal/postgresttest), or a real
// PostgREST when one is available, so that suites written against one run
// through both. Open(t, TestServer) always works; Open(t, Real) skips the
// test, saying how to enable it, unless one of these is set up:
//
//   - TEST_POSTGREST_URL and TEST_POSTGREST_JWT_SECRET: a running PostgREST
//     (its root URL, as `postgrest` serves it) serving the database of
//     TEST_DATABASE_URL with that JWT secret and db-anon-role anon. Tests
//     using it run one at a time: each migrates that database and empties
//     its tables first.
//   - a `postgrest` binary on PATH: each test starts its own over a fresh
//     database (pgtest.NewDB) and stops it at cleanup.
//
// A real PostgREST serves the API at its root; like Supabase's gateway, a
// proxy here mounts it under /rest/v1, so URL is a project URL either way.
package resttest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
	"github.com/opscontrolroom/opsd/supabase/migrations"
)

// Kind says which PostgREST a test gets.
type Kind string

const (
	TestServer Kind = "test_server" // internal/postgresttest
	Real       Kind = "postgrest"   // TEST_POSTGREST_URL, or postgrest on PATH
)

// Kinds are both, in the order suites run them.
var Kinds = []Kind{TestServer, Real}

// Environment variables of a running PostgREST.
const (
	URLVariable    = "TEST_POSTGREST_URL"
	SecretVariable = "TEST_POSTGREST_JWT_SECRET"
)

// PostgREST is a PostgREST serving DB, reachable at URL+"/rest/v1".
type PostgREST struct {
	Kind   Kind
	URL    string
	DB     *pgtest.DB
	Server *postgresttest.Server // the test server; nil for a real PostgREST (no fault injection)
	secret string
	client *http.Client
}

const keyTTL = time.Hour

// AnonKey is the anon key (a JWT with role anon).
func (p *PostgREST) AnonKey() string {
	return postgresttest.SignJWT(p.secret, postgresttest.RoleAnon, "", keyTTL)
}

// ServiceKey is the service-role key.
func (p *PostgREST) ServiceKey() string {
	return postgresttest.SignJWT(p.secret, postgresttest.RoleService, "", keyTTL)
}

// UserToken is a signed-in user's access token (role authenticated).
func (p *PostgREST) UserToken(sub string) string {
	return postgresttest.SignJWT(p.secret, postgresttest.RoleAuthenticated, sub, keyTTL)
}

// Client is an HTTP client for URL.
func (p *PostgREST) Client() *http.Client { return p.client }

// Open gives t a PostgREST of kind over a migrated database of its own (or,
// with TEST_POSTGREST_URL, the one it serves, emptied). It skips t when kind
// is Real and none is available. Call it once per test: with
// TEST_POSTGREST_URL a test holds the one database until its cleanup.
func Open(t *testing.T, kind Kind) *PostgREST {
	t.Helper()
	if kind == TestServer {
		const secret = "resttest-jwt-secret-of-at-least-32-characters"
		db := pgtest.NewDB(t)
		srv := postgresttest.New(t, db.URL, secret)
		return &PostgREST{Kind: kind, URL: srv.URL, DB: db, Server: srv, secret: secret, client: srv.Client()}
	}
	if err := Available(kind); err != nil {
		t.Skip(err)
	}
	if root := os.Getenv(URLVariable); root != "" {
		return openGiven(t, root)
	}
	bin, _ := exec.LookPath("postgrest")
	return openBinary(t, bin)
}

// Available says why kind cannot be opened here, or nil.
func Available(kind Kind) error {
	if kind == TestServer || os.Getenv(URLVariable) != "" {
		return nil
	}
	if _, err := exec.LookPath("postgrest"); err == nil {
		return nil
	}
	return fmt.Errorf("no real PostgREST: set %s and %s (a PostgREST serving TEST_DATABASE_URL's database), or put postgrest on PATH", URLVariable, SecretVariable)
}

// given serialises the tests on the one database a given PostgREST serves.
var given sync.Mutex

func openGiven(t *testing.T, root string) *PostgREST {
	t.Helper()
	secret := os.Getenv(SecretVariable)
	if secret == "" {
		t.Fatalf("%s is set but %s is not", URLVariable, SecretVariable)
	}
	given.Lock()
	t.Cleanup(given.Unlock)
	ctx := context.Background()
	fresh := pgtest.NewDB(t) // which tables start empty
	cfg, err := pgxpool.ParseConfig(pgtest.AdminURL())
	if err != nil {
		t.Fatalf("resttest: %v", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("resttest: connect to TEST_DATABASE_URL: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := reset(ctx, pool, fresh.Pool); err != nil {
		t.Fatalf("resttest: prepare the database %s serves: %v", URLVariable, err)
	}
	p := &PostgREST{Kind: Real, DB: &pgtest.DB{Name: cfg.ConnConfig.Database, URL: pgtest.AdminURL(), Pool: pool}, secret: secret}
	p.front(t, root)
	return p
}

// reset migrates the given database, empties the tables that a fresh one
// has empty, and has PostgREST reload its schema cache.
func reset(ctx context.Context, pool, fresh *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := migrations.Migrate(ctx, conn.Conn(), migrations.BootstrapAuto); err != nil {
		return err
	}
	rows, err := fresh.Query(ctx, `SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY 1`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	var empty []string
	for _, tb := range tables {
		var hasRows bool
		if err := fresh.QueryRow(ctx, `SELECT EXISTS (SELECT FROM `+tb+`)`).Scan(&hasRows); err != nil {
			return err
		}
		if !hasRows {
			empty = append(empty, tb)
		}
	}
	if len(empty) > 0 {
		if _, err := conn.Exec(ctx, `TRUNCATE `+strings.Join(empty, ", ")+` RESTART IDENTITY CASCADE`); err != nil {
			return err
		}
	}
	_, err = conn.Exec(ctx, `NOTIFY pgrst, 'reload schema'`)
	return err
}

func openBinary(t *testing.T, bin string) *PostgREST {
	t.Helper()
	const secret = "resttest-real-postgrest-jwt-secret-0123456789"
	db := pgtest.NewDB(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("resttest: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PGRST_DB_URI="+db.URL, "PGRST_DB_SCHEMAS=public", "PGRST_DB_ANON_ROLE=anon",
		"PGRST_JWT_SECRET="+secret, "PGRST_SERVER_HOST=127.0.0.1", "PGRST_SERVER_PORT="+strconv.Itoa(port))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("resttest: start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	p := &PostgREST{Kind: Real, DB: db, secret: secret}
	p.front(t, "http://127.0.0.1:"+strconv.Itoa(port))
	select {
	case err := <-exited:
		t.Fatalf("resttest: postgrest exited: %v\n%s", err, out.String())
	default:
	}
	return p
}

// front mounts the PostgREST at root under /rest/v1 and waits until it
// answers with the schema loaded.
func (p *PostgREST) front(t *testing.T, root string) {
	t.Helper()
	target, err := url.Parse(strings.TrimSuffix(root, "/"))
	if err != nil {
		t.Fatalf("resttest: PostgREST URL %q: %v", root, err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.StripPrefix(strings.TrimSuffix(postgresttest.Prefix, "/"), proxy))
	t.Cleanup(srv.Close)
	p.URL, p.client = srv.URL, srv.Client()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, p.URL+postgresttest.Prefix+"runs?limit=0", nil)
		req.Header.Set("apikey", p.ServiceKey())
		req.Header.Set("Authorization", "Bearer "+p.ServiceKey())
		resp, err := p.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("resttest: PostgREST at %s did not serve runs within 20s (last: %v)", root, describe(resp, err))
		}
		time.Sleep(50 * time.Millisecond) // polling a readiness condition, with a deadline
	}
}

func describe(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(resp.Status)
}
