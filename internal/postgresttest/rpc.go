package postgresttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// rpcArgs decodes the body of POST /rpc/<fn>: one JSON object of named
// arguments (an empty body means no arguments).
func rpcArgs(body []byte) (map[string]json.RawMessage, []string, *apiError) {
	args := map[string]json.RawMessage{}
	if b := bytes.TrimSpace(body); len(b) > 0 {
		if err := json.Unmarshal(b, &args); err != nil || args == nil {
			return nil, nil, errBadRequest("PGRST102", "Empty or invalid json", "the body of a function call is a JSON object of named arguments")
		}
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return args, keys, nil
}

// callSQL builds the call as PostgREST does: the arguments are read from the
// JSON body with json_to_record (so JSON arrays become PostgreSQL arrays and
// every value is typed by the function's signature) and passed by name.
//
//	SELECT ... FROM json_to_record($1) AS _a(p_x int, ...), LATERAL public.fn(p_x := _a.p_x, ...) AS _f
func callSQL(f *function, keys []string) string {
	from := fmt.Sprintf("public.%s() AS _f", quote(f.name))
	if len(keys) > 0 {
		defs := make([]string, len(keys))
		named := make([]string, len(keys))
		for i, k := range keys {
			idx := slices.IndexFunc(f.args, func(a funcArg) bool { return a.name == k })
			defs[i] = quote(k) + " " + f.args[idx].typ
			named[i] = fmt.Sprintf("%s := _a.%s", quote(k), quote(k))
		}
		from = fmt.Sprintf("json_to_record($1::json) AS _a(%s), LATERAL public.%s(%s) AS _f",
			strings.Join(defs, ", "), quote(f.name), strings.Join(named, ", "))
	}
	switch {
	case f.ret == retVoid:
		return "SELECT NULL::text FROM " + from
	case f.ret == retScalar && f.retSet:
		return "SELECT coalesce(json_agg(_f), '[]')::text FROM " + from
	case f.ret == retScalar:
		return "SELECT to_json(_f)::text FROM " + from
	case f.retSet:
		// _f.* expands a composite or TABLE result into named columns.
		return "SELECT coalesce(json_agg(_r), '[]')::text FROM (SELECT _f.* FROM " + from + ") _r"
	default:
		return "SELECT to_json(_r)::text FROM (SELECT _f.* FROM " + from + ") _r"
	}
}

// serveRPC calls f with the body's arguments in tx.
func serveRPC(ctx context.Context, tx pgx.Tx, f *function, keys []string, body []byte, singular bool) (*response, error) {
	var args []any
	if len(keys) > 0 {
		args = append(args, string(body))
	}
	var out *string
	if err := tx.QueryRow(ctx, callSQL(f, keys), args...).Scan(&out); err != nil {
		return nil, err
	}
	h := http.Header{}
	if f.ret == retVoid {
		return &response{status: http.StatusNoContent, header: h}, nil
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	result := []byte("null")
	if out != nil {
		result = []byte(*out)
	}
	if singular && f.retSet {
		var rows []json.RawMessage
		if err := json.Unmarshal(result, &rows); err != nil {
			return nil, err
		}
		if len(rows) != 1 {
			return nil, errSingular(len(rows))
		}
		result = rows[0]
		h.Set("Content-Type", "application/vnd.pgrst.object+json; charset=utf-8")
	}
	return &response{status: http.StatusOK, header: h, body: result}, nil
}
