package postgresttest

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// reserved query parameters; every other parameter is a column filter.
var reserved = map[string]bool{"select": true, "order": true, "limit": true, "offset": true, "on_conflict": true, "columns": true}

// query is the parsed query string of a table request.
type query struct {
	cols   []string // nil means *
	where  []string // SQL conditions, joined with AND
	order  []string // SQL ORDER BY items
	limit  *int64
	offset *int64
	args   []any
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// bind adds a bound parameter and returns its placeholder.
func (q *query) bind(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func parseQuery(t *table, v url.Values) (*query, *apiError) {
	q := &query{}
	if sel := v.Get("select"); sel != "" && sel != "*" {
		for _, c := range strings.Split(sel, ",") {
			c = strings.TrimSpace(c)
			if c == "*" {
				q.cols = nil
				break
			}
			if _, ok := t.column(c); !ok {
				return nil, errUnknownColumn(t.name, c)
			}
			q.cols = append(q.cols, c)
		}
	}
	for key, vals := range v {
		if reserved[key] {
			continue
		}
		col, ok := t.column(key)
		if !ok {
			return nil, errUnknownColumn(t.name, key)
		}
		for _, val := range vals {
			cond, err := q.filter(col, val)
			if err != nil {
				return nil, err
			}
			q.where = append(q.where, cond)
		}
	}
	if o := v.Get("order"); o != "" {
		for _, item := range strings.Split(o, ",") {
			sql, err := orderItem(t, item)
			if err != nil {
				return nil, err
			}
			q.order = append(q.order, sql)
		}
	}
	for _, p := range []struct {
		name string
		dst  **int64
	}{{"limit", &q.limit}, {"offset", &q.offset}} {
		if s := v.Get(p.name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return nil, errBadRequest("PGRST100", fmt.Sprintf("\"failed to parse %s parameter (%s)\"", p.name, s), "")
			}
			*p.dst = &n
		}
	}
	return q, nil
}

// filter turns one "[not.]op.value" filter on col into SQL. The value is
// always a bound text parameter cast to the column's type, so a malformed
// value fails in PostgreSQL (22P02) as it does under PostgREST.
func (q *query) filter(col *column, expr string) (string, *apiError) {
	neg := false
	if rest, ok := strings.CutPrefix(expr, "not."); ok {
		neg, expr = true, rest
	}
	op, val, ok := strings.Cut(expr, ".")
	if !ok {
		return "", errBadRequest("PGRST100", fmt.Sprintf("\"failed to parse filter (%s)\"", expr), "")
	}
	ident := quote(col.name)
	var sql string
	switch op {
	case "eq", "neq", "gt", "gte", "lt", "lte":
		sym := map[string]string{"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
		sql = fmt.Sprintf("%s %s CAST(%s::text AS %s)", ident, sym, q.bind(val), col.typ)
	case "like", "ilike":
		kw := strings.ToUpper(op)
		sql = fmt.Sprintf("%s::text %s %s::text", ident, kw, q.bind(strings.ReplaceAll(val, "*", "%")))
	case "in":
		items, err := parseList(val)
		if err != nil {
			return "", err
		}
		sql = fmt.Sprintf("%s = ANY(CAST(%s::text[] AS %s[]))", ident, q.bind(items), col.typ)
	case "is":
		kw, ok := map[string]string{"null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}[strings.ToLower(val)]
		if !ok {
			return "", errBadRequest("PGRST100", fmt.Sprintf("\"failed to parse filter (is.%s)\"", val), "unexpected \""+val+"\" expecting null or trilean value (unknown, true, false)")
		}
		sql = fmt.Sprintf("%s IS %s", ident, kw)
	default:
		return "", errBadRequest("PGRST100", fmt.Sprintf("\"failed to parse filter (%s)\"", expr), "unsupported operator "+op)
	}
	if neg {
		sql = "NOT (" + sql + ")"
	}
	return sql, nil
}

// parseList parses the value of in.(a,b,"c,d"): items are separated by
// commas; double quotes protect reserved characters, with \" and \\ escapes.
func parseList(s string) ([]string, *apiError) {
	if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
		return nil, errBadRequest("PGRST100", fmt.Sprintf("\"failed to parse filter (in.%s)\"", s), "expecting a list in parentheses")
	}
	s = s[1 : len(s)-1]
	var items []string
	if s == "" {
		return items, nil
	}
	var cur strings.Builder
	quoted, inQuotes := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuotes && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQuotes, quoted = !inQuotes, true
		case c == ',' && !inQuotes:
			items = append(items, item(cur.String(), quoted))
			cur.Reset()
			quoted = false
		default:
			cur.WriteByte(c)
		}
	}
	if inQuotes {
		return nil, errBadRequest("PGRST100", "\"failed to parse filter (in)\"", "unterminated quoted value")
	}
	return append(items, item(cur.String(), quoted)), nil
}

func item(s string, quoted bool) string {
	if quoted {
		return s
	}
	return strings.TrimSpace(s)
}

// orderItem parses col[.asc|.desc][.nullsfirst|.nullslast].
func orderItem(t *table, item string) (string, *apiError) {
	parts := strings.Split(strings.TrimSpace(item), ".")
	if _, ok := t.column(parts[0]); !ok {
		return "", errUnknownColumn(t.name, parts[0])
	}
	sql := quote(parts[0])
	mods := map[string]string{"asc": " ASC", "desc": " DESC", "nullsfirst": " NULLS FIRST", "nullslast": " NULLS LAST"}
	if len(parts) > 3 {
		return "", errBadRequest("PGRST100", fmt.Sprintf("\"failed to parse order (%s)\"", item), "")
	}
	for i, p := range parts[1:] {
		m, ok := mods[p]
		// the direction comes before the nulls placement
		if !ok || (i == 1 && (p == "asc" || p == "desc")) {
			return "", errBadRequest("PGRST100", fmt.Sprintf("\"failed to parse order (%s)\"", item), "")
		}
		sql += m
	}
	return sql, nil
}

// selectList is the projection: the chosen columns, or every column.
func (q *query) selectList() string {
	if len(q.cols) == 0 {
		return "*"
	}
	quoted := make([]string, len(q.cols))
	for i, c := range q.cols {
		quoted[i] = quote(c)
	}
	return strings.Join(quoted, ", ")
}

func (q *query) whereSQL() string {
	if len(q.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.where, " AND ")
}

func (q *query) tailSQL() string {
	var b strings.Builder
	if len(q.order) > 0 {
		b.WriteString(" ORDER BY " + strings.Join(q.order, ", "))
	}
	if q.limit != nil {
		b.WriteString(" LIMIT " + q.bind(*q.limit))
	}
	if q.offset != nil {
		b.WriteString(" OFFSET " + q.bind(*q.offset))
	}
	return b.String()
}
