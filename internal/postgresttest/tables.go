package postgresttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// tableRequest is a request on /rest/v1/<table>, already authenticated.
type tableRequest struct {
	method   string
	table    *table
	values   map[string][]string
	prefer   prefs
	singular bool
	body     []byte
}

// prefs is the Prefer header: return=... and resolution=...
type prefs struct {
	ret        string // minimal (default) or representation
	resolution string // "", ignore-duplicates or merge-duplicates
}

func parsePrefer(h []string) prefs {
	p := prefs{ret: "minimal"}
	for _, line := range h {
		for _, item := range strings.Split(line, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(item), "=")
			switch {
			case k == "return" && (v == "minimal" || v == "representation" || v == "headers-only"):
				if v == "headers-only" {
					v = "minimal"
				}
				p.ret = v
			case k == "resolution" && (v == "ignore-duplicates" || v == "merge-duplicates"):
				p.resolution = v
			}
		}
	}
	return p
}

func (p prefs) applied() string {
	var out []string
	if p.ret == "representation" {
		out = append(out, "return=representation")
	}
	if p.resolution != "" {
		out = append(out, "resolution="+p.resolution)
	}
	return strings.Join(out, ", ")
}

// serveTable runs the request's main query in tx.
func serveTable(ctx context.Context, tx pgx.Tx, req *tableRequest) (*response, error) {
	q, aerr := parseQuery(req.table, req.values)
	if aerr != nil {
		return nil, aerr
	}
	name := "public." + quote(req.table.name)
	switch req.method {
	case http.MethodGet, http.MethodHead:
		sql := fmt.Sprintf("SELECT %s FROM %s%s", q.selectList(), name, q.whereSQL())
		sql += q.tailSQL()
		return rowsResponse(ctx, tx, q, sql, http.StatusOK, req.singular, "")
	case http.MethodPost:
		return insert(ctx, tx, req, q, name)
	case http.MethodPatch:
		return update(ctx, tx, req, q, name)
	case http.MethodDelete:
		sql := fmt.Sprintf("DELETE FROM %s%s", name, q.whereSQL())
		return write(ctx, tx, req, q, sql, http.StatusNoContent)
	}
	return nil, newAPIError(http.StatusMethodNotAllowed, "PGRST117", "Unsupported HTTP method: "+req.method, "", "")
}

// rowsResponse aggregates the rows of sql into a JSON array (or one object
// for the singular media type) in the database, as PostgREST does.
func rowsResponse(ctx context.Context, tx pgx.Tx, q *query, sql string, status int, singular bool, applied string) (*response, error) {
	var body []byte
	var n int
	agg := "SELECT coalesce(json_agg(_r), '[]')::text, count(*) FROM (" + sql + ") _r"
	if strings.HasPrefix(sql, "WITH") || strings.HasPrefix(sql, "INSERT") || strings.HasPrefix(sql, "UPDATE") || strings.HasPrefix(sql, "DELETE") {
		agg = "WITH _r AS (" + sql + ") SELECT coalesce(json_agg(_r), '[]')::text, count(*) FROM _r"
	}
	if err := tx.QueryRow(ctx, agg, q.args...).Scan(&body, &n); err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	if applied != "" {
		h.Set("Preference-Applied", applied)
	}
	if singular {
		if n != 1 {
			return nil, errSingular(n)
		}
		var rows []json.RawMessage
		if err := json.Unmarshal(body, &rows); err != nil {
			return nil, err
		}
		body = rows[0]
		h.Set("Content-Type", "application/vnd.pgrst.object+json; charset=utf-8")
	}
	if status == http.StatusOK && !singular {
		if n == 0 {
			h.Set("Content-Range", "*/*")
		} else {
			off := int64(0)
			if q.offset != nil {
				off = *q.offset
			}
			h.Set("Content-Range", fmt.Sprintf("%d-%d/*", off, off+int64(n)-1))
		}
	}
	return &response{status: status, header: h, body: body}, nil
}

// write runs an INSERT, UPDATE or DELETE: with return=representation the
// affected rows come back (200, or 201 for an insert), else nothing
// (204, or 201 for an insert).
func write(ctx context.Context, tx pgx.Tx, req *tableRequest, q *query, sql string, minimalStatus int) (*response, error) {
	if req.prefer.ret == "representation" {
		status := http.StatusOK
		if req.method == http.MethodPost {
			status = http.StatusCreated
		}
		return rowsResponse(ctx, tx, q, sql+" RETURNING "+q.selectList(), status, req.singular, req.prefer.applied())
	}
	tag, err := tx.Exec(ctx, sql, q.args...)
	if err != nil {
		return nil, err
	}
	if req.singular && tag.RowsAffected() != 1 {
		return nil, errSingular(int(tag.RowsAffected()))
	}
	h := http.Header{}
	if a := req.prefer.applied(); a != "" {
		h.Set("Preference-Applied", a)
	}
	h.Set("Content-Range", fmt.Sprintf("*/%d", tag.RowsAffected()))
	return &response{status: minimalStatus, header: h}, nil
}

// payloadColumns checks the keys of the JSON objects against the table and
// returns them in order of first appearance (missing keys insert NULL, as
// in PostgREST's bulk insert), restricted to ?columns= when given.
func payloadColumns(t *table, objs []map[string]json.RawMessage, only string) ([]string, *apiError) {
	var cols []string
	if only != "" {
		for _, c := range strings.Split(only, ",") {
			c = strings.TrimSpace(c)
			if _, ok := t.column(c); !ok {
				return nil, newAPIError(http.StatusBadRequest, "PGRST204",
					fmt.Sprintf("Could not find the '%s' column of '%s' in the schema cache", c, t.name), "", "")
			}
			cols = append(cols, c)
		}
		return cols, nil
	}
	for _, o := range objs {
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		slices.Sort(keys) // map order is random; keep the SQL stable
		for _, k := range keys {
			if _, ok := t.column(k); !ok {
				return nil, newAPIError(http.StatusBadRequest, "PGRST204",
					fmt.Sprintf("Could not find the '%s' column of '%s' in the schema cache", k, t.name), "", "")
			}
			if !slices.Contains(cols, k) {
				cols = append(cols, k)
			}
		}
	}
	return cols, nil
}

func quoteAll(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quote(c)
	}
	return strings.Join(q, ", ")
}

func decodeObjects(body []byte) ([]map[string]json.RawMessage, *apiError) {
	body = bytes.TrimSpace(body)
	var objs []map[string]json.RawMessage
	var err error
	if len(body) > 0 && body[0] == '[' {
		err = json.Unmarshal(body, &objs)
	} else {
		var o map[string]json.RawMessage
		if err = json.Unmarshal(body, &o); err == nil {
			objs = []map[string]json.RawMessage{o}
		}
	}
	if err == nil && slices.ContainsFunc(objs, func(o map[string]json.RawMessage) bool { return o == nil }) {
		err = errors.New("every element must be a JSON object")
	}
	if err != nil {
		msg := "Empty or invalid json"
		if err != nil {
			msg = err.Error()
		}
		return nil, errBadRequest("PGRST102", msg, "")
	}
	return objs, nil
}

func insert(ctx context.Context, tx pgx.Tx, req *tableRequest, q *query, name string) (*response, error) {
	objs, aerr := decodeObjects(req.body)
	if aerr != nil {
		return nil, aerr
	}
	cols, aerr := payloadColumns(req.table, objs, firstValue(req.values, "columns"))
	if aerr != nil {
		return nil, aerr
	}
	if len(objs) == 0 {
		// An empty array inserts nothing.
		body := []byte(nil)
		if req.prefer.ret == "representation" {
			body = []byte("[]")
		}
		return &response{status: http.StatusCreated, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: body}, nil
	}
	payload, _ := json.Marshal(objs)
	var sql string
	if len(cols) == 0 {
		// Empty objects: rows of defaults.
		if len(objs) != 1 {
			return nil, errBadRequest("PGRST102", "All object keys must match", "an array of empty objects is not supported here")
		}
		sql = fmt.Sprintf("INSERT INTO %s DEFAULT VALUES", name)
	} else {
		sql = fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM json_populate_recordset(NULL::%s, %s::json)",
			name, quoteAll(cols), quoteAll(cols), name, q.bind(string(payload)))
	}
	if req.prefer.resolution != "" {
		target := req.table.pk
		if oc := firstValue(req.values, "on_conflict"); oc != "" {
			target = nil
			for _, c := range strings.Split(oc, ",") {
				c = strings.TrimSpace(c)
				if _, ok := req.table.column(c); !ok {
					return nil, errUnknownColumn(req.table.name, c)
				}
				target = append(target, c)
			}
		}
		if len(target) == 0 {
			return nil, errBadRequest("PGRST100", "on_conflict needs a primary key or the on_conflict parameter", "")
		}
		sql += " ON CONFLICT (" + quoteAll(target) + ")"
		if req.prefer.resolution == "ignore-duplicates" || len(cols) == 0 {
			sql += " DO NOTHING"
		} else {
			sets := make([]string, len(cols))
			for i, c := range cols {
				sets[i] = quote(c) + " = EXCLUDED." + quote(c)
			}
			sql += " DO UPDATE SET " + strings.Join(sets, ", ")
		}
	}
	return write(ctx, tx, req, q, sql, http.StatusCreated)
}

func update(ctx context.Context, tx pgx.Tx, req *tableRequest, q *query, name string) (*response, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(req.body, &obj); err != nil || obj == nil {
		return nil, errBadRequest("PGRST102", "Empty or invalid json", "a PATCH body is one JSON object")
	}
	cols, aerr := payloadColumns(req.table, []map[string]json.RawMessage{obj}, firstValue(req.values, "columns"))
	if aerr != nil {
		return nil, aerr
	}
	if len(cols) == 0 {
		// Nothing to set: PostgREST answers as if no row matched.
		if req.prefer.ret == "representation" {
			return &response{status: http.StatusOK, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: []byte("[]")}, nil
		}
		return &response{status: http.StatusNoContent, header: http.Header{}}, nil
	}
	// The filters were bound first; the payload is bound after them.
	sql := fmt.Sprintf("UPDATE %s SET (%s) = (SELECT %s FROM json_populate_record(NULL::%s, %s::json))%s",
		name, quoteAll(cols), quoteAll(cols), name, q.bind(string(req.body)), q.whereSQL())
	return write(ctx, tx, req, q, sql, http.StatusNoContent)
}

func firstValue(v map[string][]string, key string) string {
	if vs := v[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}
