package supabaseadapter

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Statement phases of a suggested migration: what others depend on is
// dropped first and created first.
const (
	phDropPolicies = iota
	phDropForeignKeys
	phDropConstraints
	phDropIndexes
	phDropFunctions // only those whose return type changes
	phCreateTables
	phColumns
	phFunctions
	phConstraints
	phForeignKeys
	phIndexes
	phRLS
	phPolicies
	phDropRemovedFunctions
	phDestructive
	phases
)

// SuggestMigration returns SQL that would turn the from schema of Diff(from,
// to) into the to schema: run it against the from database. It is a
// suggestion for a person to review, never applied by opsd: statements that
// drop data (tables, columns) are commented out, and changes it cannot express
// safely (identity or generated columns) are left as comments.
func SuggestMigration(changes []Change) string {
	var b strings.Builder
	b.WriteString("-- Suggested by opsd schema_sync: review before applying.\n")
	if len(changes) == 0 {
		b.WriteString("-- The schemas do not differ.\n")
		return b.String()
	}
	b.WriteString("-- Turns the \"from\" schema into the \"to\" schema; run it against the \"from\" database.\n")
	b.WriteString("-- Statements that would drop data are commented out.\n")
	var st [phases][]string
	add := func(ph int, c Change, sql string) {
		st[ph] = append(st[ph], fmt.Sprintf("-- %s %s %s%s\n%s", c.Kind, c.Name, c.Action, detail(c), sql))
	}
	for _, c := range changes {
		suggest(c, add)
	}
	b.WriteString("BEGIN;\n")
	for _, ph := range st {
		for _, s := range ph {
			b.WriteString("\n" + strings.TrimRight(s, "\n") + "\n")
		}
	}
	b.WriteString("\nCOMMIT;\n")
	return b.String()
}

func detail(c Change) string {
	if c.Detail == "" {
		return ""
	}
	return " (" + strings.ReplaceAll(c.Detail, "\n", " ") + ")"
}

func suggest(c Change, add func(int, Change, string)) {
	tbl := ident(c.Schema, c.Table)
	switch c.Kind {
	case KindTable:
		if c.Action == Removed {
			add(phDestructive, c, fmt.Sprintf("-- DROP TABLE %s;", tbl))
			return
		}
		t := c.To.(*Table)
		cols := make([]string, len(t.Columns))
		for i, col := range t.Columns {
			cols[i] = "  " + columnDef(serial(col))
		}
		add(phCreateTables, c, fmt.Sprintf("CREATE TABLE %s (\n%s\n);", tbl, strings.Join(cols, ",\n")))
		for _, k := range t.Constraints {
			suggest(Change{Kind: KindConstraint, Action: Added, Schema: c.Schema, Table: t.Name, Name: k.Name, To: &k}, add)
		}
		for _, i := range t.Indexes {
			suggest(Change{Kind: KindIndex, Action: Added, Schema: c.Schema, Table: t.Name, Name: i.Name, To: &i}, add)
		}
		if t.RLSEnabled || t.RLSForced {
			suggest(Change{Kind: KindRLS, Action: Changed, Schema: c.Schema, Table: t.Name, Name: t.Name, From: &Table{}, To: t}, add)
		}
		for _, p := range t.Policies {
			suggest(Change{Kind: KindPolicy, Action: Added, Schema: c.Schema, Table: t.Name, Name: p.Name, To: &p}, add)
		}
	case KindColumn:
		col := pgx.Identifier{c.Name}.Sanitize()
		switch c.Action {
		case Added:
			to := c.To.(*Column)
			sql := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s;", tbl, columnDef(serial(*to)))
			if to.NotNull && to.Default == "" && to.Identity == "" && to.Generated == "" {
				sql = "-- NOT NULL without a default fails if the table has rows.\n" + sql
			}
			add(phColumns, c, sql)
		case Removed:
			add(phDestructive, c, fmt.Sprintf("-- ALTER TABLE %s DROP COLUMN %s;", tbl, col))
		case Changed:
			add(phColumns, c, alterColumn(tbl, col, c.From.(*Column), c.To.(*Column)))
		}
	case KindConstraint:
		fk := func(k any) bool { return k.(*Constraint).Type == "FOREIGN KEY" }
		name := pgx.Identifier{c.Name}.Sanitize()
		if c.From != nil {
			ph := phDropConstraints
			if fk(c.From) {
				ph = phDropForeignKeys
			}
			add(ph, c, fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s;", tbl, name))
		}
		if c.To != nil {
			ph := phConstraints
			if fk(c.To) {
				ph = phForeignKeys
			}
			add(ph, c, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s;", tbl, name, c.To.(*Constraint).Definition))
		}
	case KindIndex:
		if c.From != nil {
			add(phDropIndexes, c, fmt.Sprintf("DROP INDEX %s;", ident(c.Schema, c.Name)))
		}
		if c.To != nil {
			add(phIndexes, c, c.To.(*Index).Definition+";")
		}
	case KindRLS:
		from, to := c.From.(*Table), c.To.(*Table)
		var sql []string
		if from.RLSEnabled != to.RLSEnabled {
			sql = append(sql, fmt.Sprintf("ALTER TABLE %s %s ROW LEVEL SECURITY;", tbl, map[bool]string{true: "ENABLE", false: "DISABLE"}[to.RLSEnabled]))
		}
		if from.RLSForced != to.RLSForced {
			sql = append(sql, fmt.Sprintf("ALTER TABLE %s %s ROW LEVEL SECURITY;", tbl, map[bool]string{true: "FORCE", false: "NO FORCE"}[to.RLSForced]))
		}
		add(phRLS, c, strings.Join(sql, "\n"))
	case KindPolicy:
		if c.From != nil {
			add(phDropPolicies, c, fmt.Sprintf("DROP POLICY %s ON %s;", pgx.Identifier{c.Name}.Sanitize(), tbl))
		}
		if c.To != nil {
			add(phPolicies, c, createPolicy(tbl, c.To.(*Policy)))
		}
	case KindFunction:
		switch {
		case c.Action == Removed:
			add(phDropRemovedFunctions, c, dropFunction(c.Schema, c.From.(*Function)))
		case c.Action == Changed && c.From.(*Function).Returns != c.To.(*Function).Returns:
			// CREATE OR REPLACE cannot change a return type.
			add(phDropFunctions, c, dropFunction(c.Schema, c.From.(*Function)))
			fallthrough
		default:
			add(phFunctions, c, strings.TrimRight(c.To.(*Function).Definition, "\n; ")+";")
		}
	}
}

func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

func columnDef(c *Column) string {
	var b strings.Builder
	b.WriteString(pgx.Identifier{c.Name}.Sanitize() + " " + c.Type)
	switch {
	case c.Generated != "":
		fmt.Fprintf(&b, " GENERATED ALWAYS AS (%s) STORED", c.Generated)
	case c.Identity != "":
		fmt.Fprintf(&b, " GENERATED %s AS IDENTITY", c.Identity)
	case c.Default != "":
		b.WriteString(" DEFAULT " + c.Default)
	}
	if c.NotNull {
		b.WriteString(" NOT NULL")
	}
	return b.String()
}

// serial turns a new column defaulting to nextval() into a serial one: the
// sequence is not introspected, so it must be created with the column.
func serial(c Column) *Column {
	types := map[string]string{"smallint": "smallserial", "integer": "serial", "bigint": "bigserial"}
	if t, ok := types[c.Type]; ok && strings.HasPrefix(c.Default, "nextval(") {
		c.Type, c.Default = t, ""
	}
	return &c
}

func alterColumn(tbl, col string, from, to *Column) string {
	var sql []string
	alter := func(format string, args ...any) {
		sql = append(sql, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s ", tbl, col)+fmt.Sprintf(format, args...)+";")
	}
	if from.Identity != to.Identity || from.Generated != to.Generated {
		return fmt.Sprintf("-- identity or generation of %s.%s changed: write this migration by hand.", tbl, col)
	}
	if from.Default != to.Default && from.Default != "" {
		alter("DROP DEFAULT") // the old default may not cast to a new type
	}
	if from.Type != to.Type {
		alter("TYPE %s USING %s::%s", to.Type, col, to.Type)
	}
	if from.Default != to.Default && to.Default != "" {
		alter("SET DEFAULT %s", to.Default)
	}
	if from.NotNull != to.NotNull {
		alter("%s", map[bool]string{true: "SET NOT NULL", false: "DROP NOT NULL"}[to.NotNull])
	}
	return strings.Join(sql, "\n")
}

func createPolicy(tbl string, p *Policy) string {
	return fmt.Sprintf("CREATE POLICY %s ON %s %s;", pgx.Identifier{p.Name}.Sanitize(), tbl, policyClauses(p))
}

// policyClauses renders "AS ... FOR ... [TO ...] [USING (...)] [WITH CHECK (...)]".
func policyClauses(p *Policy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "AS %s FOR %s", map[bool]string{true: "PERMISSIVE", false: "RESTRICTIVE"}[p.Permissive], p.Command)
	if len(p.Roles) > 0 {
		roles := make([]string, len(p.Roles))
		for i, r := range p.Roles {
			roles[i] = r
			if r != "public" {
				roles[i] = pgx.Identifier{r}.Sanitize()
			}
		}
		b.WriteString(" TO " + strings.Join(roles, ", "))
	}
	if p.Using != "" {
		fmt.Fprintf(&b, " USING (%s)", p.Using)
	}
	if p.WithCheck != "" {
		fmt.Fprintf(&b, " WITH CHECK (%s)", p.WithCheck)
	}
	return b.String()
}

func dropFunction(schema string, f *Function) string {
	kind := "FUNCTION"
	if f.Procedure {
		kind = "PROCEDURE"
	}
	args := strings.TrimPrefix(f.Signature, f.Name)
	return fmt.Sprintf("DROP %s %s%s;", kind, ident(schema, f.Name), args)
}
