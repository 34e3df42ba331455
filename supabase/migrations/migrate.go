// Package migrations is opsd's database schema: the .sql files beside this
// one, named and laid out as the Supabase CLI expects (`supabase db push`
// applies them), embedded so that `opsd migrate` applies the same files to
// any PostgreSQL, with bootstrap/bootstrap.sql making plain PostgreSQL look
// like Supabase first. The CLI reads only *.sql here and skips subdirectories.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed *.sql
var migrationFiles embed.FS

//go:embed bootstrap/bootstrap.sql
var bootstrapSQL string

// Migration is one file of supabase/migrations, named <version>_<name>.sql as
// the Supabase CLI expects, so `supabase db push` applies the same files.
type Migration struct {
	Version string
	Name    string
	SQL     string
}

var migrationName = regexp.MustCompile(`^(\d{14})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in version order.
func Migrations() []Migration {
	entries, err := fs.ReadDir(migrationFiles, ".")
	if err != nil {
		panic(fmt.Sprintf("embedded migrations: %v", err)) // the embed pattern guarantees the directory
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			panic(fmt.Sprintf("embedded migration %q is not named <14-digit version>_<name>.sql", e.Name()))
		}
		b, err := migrationFiles.ReadFile(e.Name())
		if err != nil {
			panic(fmt.Sprintf("embedded migration %s: %v", e.Name(), err))
		}
		out = append(out, Migration{Version: m[1], Name: m[2], SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// SchemaVersion is the newest migration this binary carries; a database is
// current when it has applied it.
func SchemaVersion() string {
	ms := Migrations()
	return ms[len(ms)-1].Version
}

// BootstrapSQL is the SQL that makes plain PostgreSQL look like Supabase to
// the migrations (roles, auth schema, migrations table).
func BootstrapSQL() string { return bootstrapSQL }

// BootstrapMode says when Migrate applies the bootstrap.
type BootstrapMode int

const (
	BootstrapAuto   BootstrapMode = iota // when the role "anon" does not exist (plain PostgreSQL)
	BootstrapAlways                      // always (it is idempotent)
	BootstrapNever                       // never (a Supabase database)
)

// migrateLockKey is the advisory lock that serializes concurrent migrators
// (two daemons starting at once).
const migrateLockKey = 0x6f707364_6d696772 // "opsdmigr"

const migrationsTable = `CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (
  version text PRIMARY KEY, statements text[], name text)`

// Pending lists the embedded migrations the database has not applied.
func Pending(ctx context.Context, conn *pgx.Conn) ([]Migration, error) {
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, m := range Migrations() {
		if !applied[m.Version] {
			out = append(out, m)
		}
	}
	return out, nil
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	var exists bool
	err := conn.QueryRow(ctx, `SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL`).Scan(&exists)
	if err != nil {
		return nil, fmt.Errorf("look for supabase_migrations.schema_migrations: %w", err)
	}
	applied := map[string]bool{}
	if !exists {
		return applied, nil
	}
	rows, err := conn.Query(ctx, `SELECT version FROM supabase_migrations.schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	for _, v := range versions {
		applied[v] = true
	}
	return applied, nil
}

// Migrate applies the pending migrations in order, each in its own
// transaction, recording each in supabase_migrations.schema_migrations like
// the Supabase CLI. It holds an advisory lock throughout, so daemons starting
// at once apply each migration exactly once. It returns what it applied.
func Migrate(ctx context.Context, conn *pgx.Conn, mode BootstrapMode) ([]Migration, error) {
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLockKey)); err != nil {
		return nil, fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// Unlock on a context that outlives a cancelled ctx; a dead
		// connection drops the lock anyway.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrateLockKey))
	}()

	if err := bootstrap(ctx, conn, mode); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, migrationsTable); err != nil {
		return nil, fmt.Errorf("create supabase_migrations.schema_migrations: %w", err)
	}
	pending, err := Pending(ctx, conn)
	if err != nil {
		return nil, err
	}
	for i, m := range pending {
		if err := applyOne(ctx, conn, m); err != nil {
			return pending[:i], err
		}
	}
	return pending, nil
}

func bootstrap(ctx context.Context, conn *pgx.Conn, mode BootstrapMode) error {
	switch mode {
	case BootstrapNever:
		return nil
	case BootstrapAuto:
		var hasAnon bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon')
			AND to_regprocedure('auth.uid()') IS NOT NULL`).Scan(&hasAnon); err != nil {
			return fmt.Errorf("detect Supabase roles: %w", err)
		}
		if hasAnon {
			return nil
		}
	}
	if _, err := conn.Exec(ctx, bootstrapSQL); err != nil {
		return fmt.Errorf("apply bootstrap (roles anon, authenticated, service_role and the auth schema): %w", err)
	}
	return nil
}

func applyOne(ctx context.Context, conn *pgx.Conn, m Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migration %s_%s: begin: %w", m.Version, m.Name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The file is sent as one simple-protocol batch: it holds many statements.
	if _, err := tx.Exec(ctx, m.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("migration %s_%s: %w", m.Version, m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO supabase_migrations.schema_migrations (version, name, statements)
		VALUES ($1, $2, ARRAY[$3])`, m.Version, m.Name, m.SQL); err != nil {
		return fmt.Errorf("migration %s_%s: record it: %w", m.Version, m.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migration %s_%s: commit: %w", m.Version, m.Name, err)
	}
	return nil
}

// ErrSchemaBehind means the database lacks migrations this binary needs.
var ErrSchemaBehind = errors.New("database schema is behind this binary: run `opsd migrate`")

// CheckSchema reports ErrSchemaBehind (wrapped, naming the pending versions)
// when migrations are pending.
func CheckSchema(ctx context.Context, conn *pgx.Conn) error {
	pending, err := Pending(ctx, conn)
	if err != nil {
		return err
	}
	if len(pending) == 0 {
		return nil
	}
	names := make([]string, len(pending))
	for i, m := range pending {
		names[i] = m.Version + "_" + m.Name
	}
	return fmt.Errorf("%w (pending: %s)", ErrSchemaBehind, strings.Join(names, ", "))
}
