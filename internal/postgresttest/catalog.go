package postgresttest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaCache holds what PostgREST's schema cache holds for public: tables
// with their columns and primary keys, and functions with their arguments.
// An entry is loaded on first use and reloaded on a miss, so objects created
// after the server started are found.
type schemaCache struct {
	pool  *pgxpool.Pool
	mu    sync.Mutex
	tabs  map[string]*table
	funcs map[string][]*function
}

type column struct {
	name string
	typ  string // format_type, used for casts of bound text values
}

type table struct {
	name string
	cols []column
	pk   []string
}

func (t *table) column(name string) (*column, bool) {
	for i := range t.cols {
		if t.cols[i].name == name {
			return &t.cols[i], true
		}
	}
	return nil, false
}

type funcArg struct {
	name       string
	typ        string
	hasDefault bool
}

// Shapes of a function's result.
const (
	retScalar    = iota // a JSON scalar (or a JSON array for setof scalar)
	retComposite        // an object (or an array of objects for setof/table)
	retVoid             // 204
)

type function struct {
	name     string
	args     []funcArg // input arguments, in order
	retSet   bool
	ret      int
	volatile bool
}

func newSchemaCache(pool *pgxpool.Pool) *schemaCache {
	return &schemaCache{pool: pool, tabs: map[string]*table{}, funcs: map[string][]*function{}}
}

// table returns the table or view public.name, nil if there is none.
func (c *schemaCache) table(ctx context.Context, name string, reload bool) (*table, error) {
	c.mu.Lock()
	t, ok := c.tabs[name]
	c.mu.Unlock()
	if ok && !reload {
		return t, nil
	}
	t, err := loadTable(ctx, c.pool, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.tabs[name] = t
	c.mu.Unlock()
	return t, nil
}

func loadTable(ctx context.Context, pool *pgxpool.Pool, name string) (*table, error) {
	rows, err := pool.Query(ctx, `
		SELECT a.attname::text, format_type(a.atttypid, NULL),
		       coalesce(a.attnum = ANY(i.indkey::int2[]), false)
		  FROM pg_class c
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		  LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
		 WHERE n.nspname = 'public' AND c.relname = $1 AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
		 ORDER BY a.attnum`, name)
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", name, err)
	}
	t := &table{name: name}
	for rows.Next() {
		var col column
		var pk bool
		if err := rows.Scan(&col.name, &col.typ, &pk); err != nil {
			return nil, err
		}
		t.cols = append(t.cols, col)
		if pk {
			t.pk = append(t.pk, col.name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load table %s: %w", name, err)
	}
	if len(t.cols) == 0 {
		return nil, nil
	}
	return t, nil
}

// function resolves public.name for the given argument names as PostgREST
// does: the overload whose input argument names include every given key and
// whose arguments without a default are all given.
func (c *schemaCache) function(ctx context.Context, name string, keys []string) (*function, *apiError, error) {
	for attempt := 0; attempt < 2; attempt++ {
		c.mu.Lock()
		fs, ok := c.funcs[name]
		c.mu.Unlock()
		if !ok || attempt == 1 {
			var err error
			if fs, err = loadFunctions(ctx, c.pool, name); err != nil {
				return nil, nil, err
			}
			c.mu.Lock()
			c.funcs[name] = fs
			c.mu.Unlock()
		}
		var match []*function
		for _, f := range fs {
			if f.accepts(keys) {
				match = append(match, f)
			}
		}
		switch len(match) {
		case 1:
			return match[0], nil, nil
		case 0:
			continue
		default:
			return nil, newAPIError(300, "PGRST203",
				fmt.Sprintf("Could not choose the best candidate function between overloads of public.%s", name),
				"", "Try renaming the parameters or the function itself in the database so function overloading can be resolved"), nil
		}
	}
	sorted := slices.Clone(keys)
	sort.Strings(sorted)
	return nil, newAPIError(404, "PGRST202",
		fmt.Sprintf("Could not find the function public.%s(%s) in the schema cache", name, strings.Join(sorted, ", ")),
		"Searched for the function public."+name+" with parameters "+strings.Join(sorted, ", ")+" or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
		"If a new function was created in the database with this name and parameters, try reloading the schema cache."), nil
}

func (f *function) accepts(keys []string) bool {
	for _, k := range keys {
		if !slices.ContainsFunc(f.args, func(a funcArg) bool { return a.name == k }) {
			return false
		}
	}
	for _, a := range f.args {
		if !a.hasDefault && !slices.Contains(keys, a.name) {
			return false
		}
	}
	return true
}

func loadFunctions(ctx context.Context, pool *pgxpool.Pool, name string) ([]*function, error) {
	rows, err := pool.Query(ctx, `
		SELECT coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'),
		       array(SELECT format_type(u.t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, i) ORDER BY u.i),
		       p.pronargdefaults, p.proretset, t.typtype::text, p.prorettype = 'void'::regtype,
		       p.provolatile = 'v', t.oid = 'record'::regtype
		  FROM pg_proc p
		  JOIN pg_namespace n ON n.oid = p.pronamespace
		  JOIN pg_type t ON t.oid = p.prorettype
		 WHERE n.nspname = 'public' AND p.proname = $1 AND p.prokind = 'f'`, name)
	if err != nil {
		return nil, fmt.Errorf("load function %s: %w", name, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*function, error) {
		var names, modes, types []string
		var nDefaults int
		var retSet, void, volatile, record bool
		var typtype string
		if err := row.Scan(&names, &modes, &types, &nDefaults, &retSet, &typtype, &void, &volatile, &record); err != nil {
			return nil, err
		}
		f := &function{name: name, retSet: retSet, volatile: volatile}
		switch {
		case void:
			f.ret = retVoid
		case typtype == "c" || record:
			f.ret = retComposite
		default:
			f.ret = retScalar
		}
		// proargnames covers every argument when proargmodes is set (OUT and
		// TABLE columns included), only the inputs otherwise.
		var inNames []string
		for i, n := range names {
			if len(modes) == 0 || modes[i] == "i" || modes[i] == "b" || modes[i] == "v" {
				inNames = append(inNames, n)
			}
		}
		for i, typ := range types {
			a := funcArg{typ: typ, hasDefault: i >= len(types)-nDefaults}
			if i < len(inNames) {
				a.name = inNames[i]
			}
			f.args = append(f.args, a)
		}
		return f, nil
	})
}
