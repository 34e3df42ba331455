// Package pgtest gives tests a real, migrated PostgreSQL database each.
//
// A package's TestMain calls Main. It uses TEST_DATABASE_URL when set — a
// superuser URL, since it creates databases and the Supabase roles — and
// otherwise starts a throwaway cluster from the
// installed PostgreSQL server binaries (as the postgres OS user when running
// as root, since initdb refuses root) and removes it when the tests end. It
// never skips: without a server it fails and names the package to install.
//
// It never reads DATABASE_URL, which the README tells operators to export
// for opsd: a developer's real database is never a test's. It also removes
// opsd's store settings (DATABASE_URL, SUPABASE_URL,
// SUPABASE_SERVICE_ROLE_KEY) from the test process's environment, so that
// no configuration a test loads, and no opsd a test starts, can reach them.
//
// The migrations are applied once per cluster to a template database; NewDB
// clones it (CREATE DATABASE ... TEMPLATE) so every test gets an isolated,
// migrated database in a few milliseconds and tests can run in parallel.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/opscontrolroom/opsd/internal/pgcluster"
	"github.com/opscontrolroom/opsd/supabase/migrations"
)

var (
	adminURL string // superuser URL of the cluster (database postgres or the given one)
	template string // name of the migrated template database
)

// Main sets PostgreSQL up, runs the package's tests, checks for leaked
// goroutines (goleak) and tears the cluster down. It exits the process.
func Main(m *testing.M, leakOpts ...goleak.Option) {
	os.Exit(Run(m, leakOpts...))
}

// Run is Main without the exit, for a TestMain with cleanup of its own; it
// returns the exit code.
func Run(m *testing.M, leakOpts ...goleak.Option) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, k := range operatorSettings {
		if err := os.Unsetenv(k); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: unset %s: %v\n", k, err)
			return 2
		}
	}
	u := os.Getenv(URLVariable)
	if u == "" {
		c, err := pgcluster.Start(ctx, pgcluster.Options{})
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			return 2
		}
		defer func() {
			if err := c.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			}
		}()
		u = c.URL
	}
	adminURL = u
	if err := ensureTemplate(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: build the migrated template database: %v\n", err)
		return 2
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(leakOpts...); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: goroutines leaked: %v\n", err)
			return 1
		}
	}
	return code
}

// URLVariable names the one variable that points tests at a running server.
const URLVariable = "TEST_DATABASE_URL"

// operatorSettings are the environment variables of opsd's store that an
// operator exports; tests must never see them.
var operatorSettings = []string{"DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"}

// AdminURL is the superuser URL Main set up (for tests that need their own
// scratch databases).
func AdminURL() string { return adminURL }

func templateName() string {
	h := sha256.New()
	h.Write([]byte(migrations.BootstrapSQL()))
	for _, m := range migrations.Migrations() {
		h.Write([]byte(m.Version + m.SQL))
	}
	return "opsd_tpl_" + hex.EncodeToString(h.Sum(nil))[:12]
}

// ensureTemplate builds the template database once per cluster. Several test
// processes may race here; an advisory lock in the admin database makes one
// of them build while the others wait.
func ensureTemplate(ctx context.Context) error {
	template = templateName()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redactURL(adminURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(7365201)`); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7365201)`) //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, template).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := template + "_build"
	if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+building+` WITH (FORCE)`); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+building); err != nil {
		return err
	}
	bconn, err := pgx.Connect(ctx, withDatabase(adminURL, building))
	if err != nil {
		return err
	}
	if _, err := migrations.Migrate(ctx, bconn, migrations.BootstrapAuto); err != nil {
		bconn.Close(ctx)
		return err
	}
	bconn.Close(ctx)
	_, err = conn.Exec(ctx, `ALTER DATABASE `+building+` RENAME TO `+template)
	return err
}

// DB is one isolated, migrated database.
type DB struct {
	Name string
	URL  string        // superuser URL of this database
	Pool *pgxpool.Pool // superuser pool, closed at cleanup
}

// NewDB clones the template into a fresh database dropped when t ends.
func NewDB(t testing.TB) *DB {
	t.Helper()
	ctx := context.Background()
	name := "opsd_t_" + randHex(6)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+template); err != nil {
		t.Fatalf("pgtest: create database %s from %s: %v", name, template, err)
	}
	db := &DB{Name: name, URL: withDatabase(adminURL, name)}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cfg.MaxConns = 20
	db.Pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(func() {
		// A connection that is never released would make Close wait forever:
		// give it a bounded time, then drop the database anyway (FORCE ends
		// its sessions) and say what happened instead of hanging.
		closed := make(chan struct{})
		go func() {
			db.Pool.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(15 * time.Second):
			t.Errorf("pgtest: %s: a pool connection was not released within 15s (a goroutine still holds it)", name)
		}
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
		}
	})
	return db
}

func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		// keyword/value form
		return raw + " dbname=" + db
	}
	u.Path = "/" + db
	return u.String()
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(database URL)"
	}
	return u.Redacted()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}
