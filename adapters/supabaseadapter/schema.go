package supabaseadapter

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
)

// Schema is what Introspect reads of one Postgres schema. Slices are sorted
// by name (columns by position), so equal schemas are deeply equal.
type Schema struct {
	Name      string
	Tables    []Table
	Functions []Function
}

// Table is an ordinary or partitioned table.
type Table struct {
	Name        string
	RLSEnabled  bool // ALTER TABLE ... ENABLE ROW LEVEL SECURITY
	RLSForced   bool // ALTER TABLE ... FORCE ROW LEVEL SECURITY
	Columns     []Column
	Indexes     []Index
	Constraints []Constraint
	Policies    []Policy
}

// Column is a table column.
type Column struct {
	Name      string
	Type      string // format_type, e.g. "character varying(255)"
	NotNull   bool
	Default   string // expression, "" when none
	Identity  string // "", "ALWAYS" or "BY DEFAULT"
	Generated string // generation expression of a stored generated column
}

// Index is an index not backing a constraint.
type Index struct {
	Name       string
	Definition string // pg_get_indexdef: the full CREATE INDEX statement
}

// Constraint is a primary key, unique, foreign key, check or exclusion constraint.
type Constraint struct {
	Name       string
	Type       string // PRIMARY KEY, UNIQUE, FOREIGN KEY, CHECK, EXCLUDE
	Definition string // pg_get_constraintdef, e.g. "FOREIGN KEY (org_id) REFERENCES orgs(id)"
}

// Policy is a row level security policy.
type Policy struct {
	Name       string
	Permissive bool
	Command    string   // ALL, SELECT, INSERT, UPDATE, DELETE
	Roles      []string // e.g. ["authenticated"]; ["public"] for everyone
	Using      string   // USING expression, "" when none
	WithCheck  string   // WITH CHECK expression, "" when none
}

// Function is a function or procedure, identified by Signature.
type Function struct {
	Signature  string // name(identity arguments), e.g. "touch(p_id uuid)"
	Name       string
	Returns    string // "" for procedures
	Language   string
	Procedure  bool
	Definition string // pg_get_functiondef: the full CREATE OR REPLACE statement
	Hash       string // sha256 of Definition, hex
}

// Querier runs queries: *pgx.Conn, *pgxpool.Pool and pgx.Tx all satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// txStarter is implemented by *pgx.Conn and *pgxpool.Pool.
type txStarter interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// ErrSchemaNotFound is returned by Introspect for a schema that does not exist.
var ErrSchemaNotFound = errors.New("schema not found")

//go:embed sql/*.sql
var queries embed.FS

func query(name string) string {
	b, err := queries.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	return string(b)
}

// Introspect reads tables, columns, indexes, constraints, RLS flags, policies
// and functions of schema from pg_catalog. Given a connection or pool it reads
// in one read-only repeatable-read transaction, so the picture is consistent;
// given a transaction it uses that.
func Introspect(ctx context.Context, q Querier, schema string) (*Schema, error) {
	if ts, ok := q.(txStarter); ok {
		tx, err := ts.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return nil, fmt.Errorf("introspect schema %s: begin: %w", schema, err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
		q = tx
	}
	s, err := introspect(ctx, q, schema)
	if err != nil {
		return nil, fmt.Errorf("introspect schema %s: %w", schema, err)
	}
	return s, nil
}

func introspect(ctx context.Context, q Querier, schema string) (*Schema, error) {
	var exists bool
	rows, err := q.Query(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)`, schema)
	if err == nil {
		exists, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	}
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, ErrSchemaNotFound
	}
	s := &Schema{Name: schema}
	tables := map[string]*Table{}
	var order []string
	err = each(ctx, q, "tables", schema, func(r pgx.Rows) error {
		var t Table
		if err := r.Scan(&t.Name, &t.RLSEnabled, &t.RLSForced); err != nil {
			return err
		}
		tables[t.Name] = &t
		order = append(order, t.Name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	table := func(name string) *Table {
		if t := tables[name]; t != nil {
			return t
		}
		return &Table{} // an extension's table: read, then dropped
	}
	err = each(ctx, q, "columns", schema, func(r pgx.Rows) error {
		var tn, identity, generated string
		var c Column
		if err := r.Scan(&tn, &c.Name, &c.Type, &c.NotNull, &c.Default, &identity, &generated); err != nil {
			return err
		}
		c.Identity = map[string]string{"a": "ALWAYS", "d": "BY DEFAULT"}[identity]
		if generated == "s" {
			c.Generated, c.Default = c.Default, ""
		}
		t := table(tn)
		t.Columns = append(t.Columns, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each(ctx, q, "indexes", schema, func(r pgx.Rows) error {
		var tn string
		var i Index
		if err := r.Scan(&tn, &i.Name, &i.Definition); err != nil {
			return err
		}
		t := table(tn)
		t.Indexes = append(t.Indexes, i)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each(ctx, q, "constraints", schema, func(r pgx.Rows) error {
		var tn, typ string
		var c Constraint
		if err := r.Scan(&tn, &c.Name, &typ, &c.Definition); err != nil {
			return err
		}
		c.Type = constraintTypes[typ]
		t := table(tn)
		t.Constraints = append(t.Constraints, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each(ctx, q, "policies", schema, func(r pgx.Rows) error {
		var tn, permissive string
		var p Policy
		if err := r.Scan(&tn, &p.Name, &permissive, &p.Roles, &p.Command, &p.Using, &p.WithCheck); err != nil {
			return err
		}
		p.Permissive = permissive == "PERMISSIVE"
		sort.Strings(p.Roles)
		t := table(tn)
		t.Policies = append(t.Policies, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each(ctx, q, "functions", schema, func(r pgx.Rows) error {
		var f Function
		var args, kind string
		if err := r.Scan(&f.Name, &args, &f.Returns, &f.Language, &kind, &f.Definition); err != nil {
			return err
		}
		f.Signature = f.Name + "(" + args + ")"
		f.Procedure = kind == "p"
		sum := sha256.Sum256([]byte(f.Definition))
		f.Hash = hex.EncodeToString(sum[:])
		s.Functions = append(s.Functions, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, n := range order {
		s.Tables = append(s.Tables, *tables[n])
	}
	// The queries order by name already; sort again so the order does not
	// depend on the database's collation.
	sort.Slice(s.Tables, func(i, j int) bool { return s.Tables[i].Name < s.Tables[j].Name })
	for i := range s.Tables {
		t := &s.Tables[i]
		sort.Slice(t.Indexes, func(i, j int) bool { return t.Indexes[i].Name < t.Indexes[j].Name })
		sort.Slice(t.Constraints, func(i, j int) bool { return t.Constraints[i].Name < t.Constraints[j].Name })
		sort.Slice(t.Policies, func(i, j int) bool { return t.Policies[i].Name < t.Policies[j].Name })
	}
	sort.Slice(s.Functions, func(i, j int) bool { return s.Functions[i].Signature < s.Functions[j].Signature })
	return s, nil
}

var constraintTypes = map[string]string{
	"p": "PRIMARY KEY", "u": "UNIQUE", "f": "FOREIGN KEY", "c": "CHECK", "x": "EXCLUDE",
}

// each runs the embedded query name with schema and calls f for every row.
func each(ctx context.Context, q Querier, name, schema string, f func(pgx.Rows) error) error {
	rows, err := q.Query(ctx, query(name), schema)
	if err != nil {
		return fmt.Errorf("query %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return fmt.Errorf("scan %s: %w", name, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query %s: %w", name, err)
	}
	return nil
}
