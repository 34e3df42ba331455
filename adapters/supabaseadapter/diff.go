package supabaseadapter

import (
	"fmt"
	"slices"
	"strings"
)

// Kind is the kind of object a Change is about.
type Kind string

// Kinds of Change.
const (
	KindTable      Kind = "table"
	KindColumn     Kind = "column"
	KindConstraint Kind = "constraint"
	KindIndex      Kind = "index"
	KindRLS        Kind = "rls"
	KindPolicy     Kind = "policy"
	KindFunction   Kind = "function"
)

// Action is what happens to the object going from one schema to the other.
type Action string

// Actions of a Change.
const (
	Added   Action = "added"   // only in to
	Removed Action = "removed" // only in from
	Changed Action = "changed" // in both, different
)

// Change is one difference between two schemas.
//
// From and To hold the object as it is in each schema (nil where it is
// absent): *Table, *Column, *Constraint, *Index, *Policy or *Function; for
// KindRLS, *Table (its RLS flags).
type Change struct {
	Kind   Kind
	Action Action
	Schema string // the from schema's name
	Table  string // owning table; the table itself for KindTable and KindRLS; "" for functions
	Name   string // column, constraint, index or policy name; table name; function signature
	Detail string // what differs, e.g. "type: text -> character varying(255)"
	From   any    `json:",omitempty"`
	To     any    `json:",omitempty"`
}

// Diff lists what differs between two schemas, as the changes that would turn
// from into to: Added objects exist only in to, Removed only in from. An added
// or removed table is one change (its columns, indexes and so on are not
// listed separately). The order is deterministic: tables by name, within a
// table its own changes, then columns, constraints, indexes, RLS and policies,
// each by name; functions last, by signature.
//
// Objects are matched by name. Index, constraint and function definitions
// name their schema, so compare schemas of the same name (public of two
// projects, say). Column order, sequences, views, triggers, grants and
// extensions are not compared.
func Diff(from, to *Schema) []Change {
	var out []Change
	schema := from.Name
	ft, tt := indexBy(from.Tables, tableName), indexBy(to.Tables, tableName)
	for _, name := range unionKeys(ft, tt) {
		a, b := ft[name], tt[name]
		switch {
		case b == nil:
			out = append(out, Change{Kind: KindTable, Action: Removed, Schema: schema, Table: name, Name: name, From: a})
		case a == nil:
			out = append(out, Change{Kind: KindTable, Action: Added, Schema: schema, Table: name, Name: name, To: b})
		default:
			out = append(out, diffTable(schema, a, b)...)
		}
	}
	ff, tf := indexBy(from.Functions, funcSig), indexBy(to.Functions, funcSig)
	for _, sig := range unionKeys(ff, tf) {
		a, b := ff[sig], tf[sig]
		c := Change{Kind: KindFunction, Schema: schema, Name: sig, From: a, To: b}
		switch {
		case b == nil:
			c.Action, c.To = Removed, nil
		case a == nil:
			c.Action, c.From = Added, nil
		case a.Hash == b.Hash:
			continue
		default:
			c.Action = Changed
			c.Detail = joinDiffs(
				field("returns", a.Returns, b.Returns),
				field("language", a.Language, b.Language),
				field("definition sha256", short(a.Hash), short(b.Hash)),
			)
		}
		out = append(out, c)
	}
	return out
}

func diffTable(schema string, a, b *Table) []Change {
	var out []Change
	mk := func(kind Kind, name string) Change {
		return Change{Kind: kind, Schema: schema, Table: a.Name, Name: name}
	}
	fc, tc := indexBy(a.Columns, colName), indexBy(b.Columns, colName)
	for _, n := range unionKeys(fc, tc) {
		if c, ok := compare(mk(KindColumn, n), fc[n], tc[n], func(x, y *Column) string {
			return joinDiffs(
				field("type", x.Type, y.Type),
				field("not null", fmt.Sprint(x.NotNull), fmt.Sprint(y.NotNull)),
				field("default", x.Default, y.Default),
				field("identity", x.Identity, y.Identity),
				field("generated", x.Generated, y.Generated),
			)
		}); ok {
			out = append(out, c)
		}
	}
	fk, tk := indexBy(a.Constraints, conName), indexBy(b.Constraints, conName)
	for _, n := range unionKeys(fk, tk) {
		if c, ok := compare(mk(KindConstraint, n), fk[n], tk[n], func(x, y *Constraint) string {
			return field("definition", x.Definition, y.Definition)
		}); ok {
			out = append(out, c)
		}
	}
	fi, ti := indexBy(a.Indexes, idxName), indexBy(b.Indexes, idxName)
	for _, n := range unionKeys(fi, ti) {
		if c, ok := compare(mk(KindIndex, n), fi[n], ti[n], func(x, y *Index) string {
			return field("definition", x.Definition, y.Definition)
		}); ok {
			out = append(out, c)
		}
	}
	if d := joinDiffs(
		field("enabled", fmt.Sprint(a.RLSEnabled), fmt.Sprint(b.RLSEnabled)),
		field("forced", fmt.Sprint(a.RLSForced), fmt.Sprint(b.RLSForced)),
	); d != "" {
		c := mk(KindRLS, a.Name)
		c.Action, c.Detail, c.From, c.To = Changed, d, a, b
		out = append(out, c)
	}
	fp, tp := indexBy(a.Policies, polName), indexBy(b.Policies, polName)
	for _, n := range unionKeys(fp, tp) {
		if c, ok := compare(mk(KindPolicy, n), fp[n], tp[n], func(x, y *Policy) string {
			return joinDiffs(
				field("permissive", fmt.Sprint(x.Permissive), fmt.Sprint(y.Permissive)),
				field("command", x.Command, y.Command),
				field("roles", strings.Join(x.Roles, ","), strings.Join(y.Roles, ",")),
				field("using", x.Using, y.Using),
				field("with check", x.WithCheck, y.WithCheck),
			)
		}); ok {
			out = append(out, c)
		}
	}
	return out
}

// compare fills c for an object present in from (x), to (y) or both; ok is
// false when they do not differ.
func compare[T any](c Change, x, y *T, detail func(x, y *T) string) (Change, bool) {
	switch {
	case x == nil:
		c.Action, c.To = Added, y
	case y == nil:
		c.Action, c.From = Removed, x
	default:
		d := detail(x, y)
		if d == "" {
			return c, false
		}
		c.Action, c.Detail, c.From, c.To = Changed, d, x, y
	}
	return c, true
}

func field(name, a, b string) string {
	if a == b {
		return ""
	}
	return fmt.Sprintf("%s: %s -> %s", name, orNone(a), orNone(b))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func joinDiffs(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), "; ")
}

func short(h string) string { return h[:min(len(h), 12)] }

func tableName(t *Table) string    { return t.Name }
func colName(c *Column) string     { return c.Name }
func conName(c *Constraint) string { return c.Name }
func idxName(i *Index) string      { return i.Name }
func polName(p *Policy) string     { return p.Name }
func funcSig(f *Function) string   { return f.Signature }

// indexBy maps each element's key to a pointer into s.
func indexBy[T any](s []T, key func(*T) string) map[string]*T {
	m := make(map[string]*T, len(s))
	for i := range s {
		m[key(&s[i])] = &s[i]
	}
	return m
}

// unionKeys returns the keys of a and b, sorted.
func unionKeys[T any](a, b map[string]*T) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
