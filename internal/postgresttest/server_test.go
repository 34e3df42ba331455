package postgresttest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	alice = "11111111-1111-1111-1111-111111111111"
	bob   = "22222222-2222-2222-2222-222222222222"
)

func newServer(t *testing.T) (*Server, func(sql string, args ...any)) {
	t.Parallel()
	dbURL, pool := scratchDB(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(context.Background(), sql, args...)
		require.NoError(t, err)
	}
	exec(`INSERT INTO owners VALUES ($1), ($2)`, alice, bob)
	exec(`INSERT INTO notes (slug, owner, body, public, n, tags) VALUES
		('a1', $1, 'alice public', true, 1, '{x,y}'),
		('a2', $1, 'alice private', false, 2, NULL),
		('b1', $2, 'bob, private', false, NULL, '{y}')`, alice, bob)
	return New(t, dbURL, testSecret), exec
}

func TestAuth(t *testing.T) {
	s, _ := newServer(t)
	status, body, _ := call(t, s, "GET", "notes", "", nil)
	assert.Equal(t, http.StatusUnauthorized, status, "no apikey")
	assert.NotEmpty(t, errCode(t, body))

	forged := SignJWT("another-secret-another-secret-another-secret", RoleService, "", time.Hour)
	status, body, hdr := call(t, s, "GET", "notes", forged, nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "PGRST301", errCode(t, body))
	assert.Contains(t, hdr.Get("WWW-Authenticate"), "invalid_token")

	expired := SignJWT(testSecret, RoleService, "", -time.Minute)
	status, body, _ = call(t, s, "GET", "notes", s.AnonKey(), nil, "Authorization", "Bearer "+expired)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "PGRST301", errCode(t, body))
	assert.Contains(t, string(body), "JWT expired")

	status, _, _ = call(t, s, "GET", "notes", s.AnonKey(), nil, "Authorization", "Basic eDp5")
	assert.Equal(t, http.StatusUnauthorized, status)
}

func TestRowLevelSecurity(t *testing.T) {
	s, _ := newServer(t)
	var notes []struct {
		Slug  string  `json:"slug"`
		Owner *string `json:"owner"`
	}
	get := func(key string) {
		t.Helper()
		status, body, _ := call(t, s, "GET", "notes?select=slug,owner&order=slug", key, nil)
		require.Equal(t, http.StatusOK, status, "%s", body)
		notes = nil
		require.NoError(t, json.Unmarshal(body, &notes))
	}
	get(s.AnonKey())
	require.Len(t, notes, 1, "anon sees public notes only")
	assert.Equal(t, "a1", notes[0].Slug)

	get(s.UserToken(bob))
	require.Len(t, notes, 1, "a user sees their own notes")
	assert.Equal(t, "b1", notes[0].Slug)

	get(s.ServiceKey())
	assert.Len(t, notes, 3, "service_role bypasses RLS")

	// Writes: anon has no INSERT grant (401, as anon); a user inserts rows
	// owned by auth.uid() only (403 otherwise); service_role may write.
	status, body, _ := call(t, s, "POST", "notes", s.AnonKey(), map[string]any{"body": "x"})
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "42501", errCode(t, body))

	status, body, _ = call(t, s, "POST", "notes", s.UserToken(alice), map[string]any{"body": "mine"},
		"Prefer", "return=representation")
	require.Equal(t, http.StatusCreated, status, "%s", body)
	assert.Contains(t, string(body), alice, "owner defaults to the JWT sub")

	status, body, _ = call(t, s, "POST", "notes", s.UserToken(alice), map[string]any{"body": "forged", "owner": bob})
	assert.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, "42501", errCode(t, body))

	// A user's PATCH only reaches their own rows.
	status, body, _ = call(t, s, "PATCH", "notes?slug=eq.b1", s.UserToken(alice), map[string]any{"body": "hacked"},
		"Prefer", "return=representation")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `[]`, string(body))
}

func TestRead(t *testing.T) {
	s, _ := newServer(t)
	key := s.ServiceKey()
	slugs := func(path string) []string {
		t.Helper()
		status, body, _ := call(t, s, "GET", path, key, nil)
		require.Equal(t, http.StatusOK, status, "%s: %s", path, body)
		var rows []struct {
			Slug string `json:"slug"`
		}
		require.NoError(t, json.Unmarshal(body, &rows))
		out := []string{}
		for _, r := range rows {
			out = append(out, r.Slug)
		}
		return out
	}
	cases := []struct {
		path string
		want []string
	}{
		{"notes?select=slug&order=slug", []string{"a1", "a2", "b1"}},
		{"notes?select=slug&slug=eq.a2", []string{"a2"}},
		{"notes?select=slug&slug=neq.a2&order=slug.desc", []string{"b1", "a1"}},
		{"notes?select=slug&n=gt.1", []string{"a2"}},
		{"notes?select=slug&n=gte.1&n=lte.1", []string{"a1"}},
		{"notes?select=slug&n=lt.2", []string{"a1"}},
		{"notes?select=slug&n=is.null", []string{"b1"}},
		{"notes?select=slug&n=not.is.null&order=n.desc", []string{"a2", "a1"}},
		{"notes?select=slug&public=is.true", []string{"a1"}},
		{"notes?select=slug&slug=in.(a1,b1)&order=slug", []string{"a1", "b1"}},
		{"notes?select=slug&body=in.(%22bob,%20private%22,nope)", []string{"b1"}},
		{"notes?select=slug&slug=not.in.(a1,b1)", []string{"a2"}},
		{"notes?select=slug&body=like.alice*&order=slug", []string{"a1", "a2"}},
		{"notes?select=slug&order=n.desc.nullslast", []string{"a2", "a1", "b1"}},
		{"notes?select=slug&order=n.desc.nullsfirst", []string{"b1", "a2", "a1"}},
		{"notes?select=slug&order=slug&limit=1&offset=1", []string{"a2"}},
		{"notes?select=slug&owner=eq." + bob, []string{"b1"}},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, slugs(c.path), c.path)
	}

	status, body, hdr := call(t, s, "GET", "notes?slug=eq.a1&select=slug,tags,meta", key, nil,
		"Accept", "application/vnd.pgrst.object+json")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"slug":"a1","tags":["x","y"],"meta":null}`, string(body))
	assert.Contains(t, hdr.Get("Content-Type"), "vnd.pgrst.object")

	for _, path := range []string{"notes?slug=eq.none", "notes"} {
		status, body, _ = call(t, s, "GET", path, key, nil, "Accept", "application/vnd.pgrst.object+json")
		assert.Equal(t, http.StatusNotAcceptable, status, path)
		assert.Equal(t, "PGRST116", errCode(t, body))
	}

	errs := []struct {
		path   string
		status int
		code   string
	}{
		{"nope", 404, "PGRST205"},
		{"notes?select=nope", 400, "42703"},
		{"notes?nope=eq.1", 400, "42703"},
		{"notes?order=nope.desc", 400, "42703"},
		{"notes?owner=eq.not-a-uuid", 400, "22P02"},
		{"notes?n=eq.x", 400, "22P02"},
		{"notes?n=regex.x", 400, "PGRST100"},
		{"notes?n=is.maybe", 400, "PGRST100"},
		{"notes?limit=-1", 400, "PGRST100"},
		{"notes?order=n.sideways", 400, "PGRST100"},
	}
	for _, e := range errs {
		status, body, _ := call(t, s, "GET", e.path, key, nil)
		assert.Equal(t, e.status, status, e.path)
		assert.Equal(t, e.code, errCode(t, body), e.path)
	}
}

func TestWrite(t *testing.T) {
	s, _ := newServer(t)
	key := s.ServiceKey()
	rep := []string{"Prefer", "return=representation"}

	status, body, _ := call(t, s, "POST", "notes?select=slug,tags,meta", key, []map[string]any{
		{"slug": "c1", "body": "one", "tags": []string{"p", "q"}, "meta": map[string]any{"k": 1}},
		{"slug": "c2", "body": "two"},
	}, rep...)
	require.Equal(t, http.StatusCreated, status, "%s", body)
	assert.JSONEq(t, `[{"slug":"c1","tags":["p","q"],"meta":{"k":1}},{"slug":"c2","tags":null,"meta":null}]`, string(body))

	status, body, _ = call(t, s, "POST", "notes", key, map[string]any{"slug": "c1", "body": "dup"})
	assert.Equal(t, http.StatusConflict, status)
	assert.Equal(t, "23505", errCode(t, body))

	status, _, _ = call(t, s, "POST", "notes?on_conflict=slug", key,
		[]map[string]any{{"slug": "c1", "body": "ignored"}, {"slug": "c3", "body": "three"}},
		"Prefer", "return=minimal", "Prefer", "resolution=ignore-duplicates")
	require.Equal(t, http.StatusCreated, status)
	status, body, hdr := call(t, s, "POST", "notes?on_conflict=slug&select=slug,body", key,
		map[string]any{"slug": "c2", "body": "merged"}, "Prefer", "return=representation,resolution=merge-duplicates")
	require.Equal(t, http.StatusCreated, status)
	assert.JSONEq(t, `[{"slug":"c2","body":"merged"}]`, string(body))
	assert.Equal(t, "return=representation, resolution=merge-duplicates", hdr.Get("Preference-Applied"))

	status, body, _ = call(t, s, "GET", "notes?select=slug,body&slug=in.(c1,c2,c3)&order=slug", key, nil)
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `[{"slug":"c1","body":"one"},{"slug":"c2","body":"merged"},{"slug":"c3","body":"three"}]`, string(body))

	status, body, _ = call(t, s, "PATCH", "notes?slug=eq.c3", key, map[string]any{"body": "patched", "n": 7})
	assert.Equal(t, http.StatusNoContent, status, "%s", body)
	status, body, _ = call(t, s, "PATCH", "notes?slug=eq.c3&select=body,n", key, map[string]any{"n": 8},
		"Prefer", "return=representation", "Accept", "application/vnd.pgrst.object+json")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"body":"patched","n":8}`, string(body))

	status, _, _ = call(t, s, "DELETE", "notes?slug=eq.c3", key, nil)
	assert.Equal(t, http.StatusNoContent, status)
	status, body, _ = call(t, s, "DELETE", "notes?slug=in.(c1,c2)&select=slug&order=slug", key, nil, rep...)
	require.Equal(t, http.StatusOK, status)
	assert.Len(t, jsonArray(t, body), 2)

	errs := []struct {
		body   any
		status int
		code   string
	}{
		{map[string]any{"body": "neg", "n": -1}, 400, "23514"},
		{map[string]any{"slug": "nobody"}, 400, "23502"},
		{map[string]any{"body": "x", "owner": "33333333-3333-3333-3333-333333333333"}, 409, "23503"},
		{map[string]any{"body": "x", "owner": "nope"}, 400, "22P02"},
		{map[string]any{"body": "x", "nope": 1}, 400, "PGRST204"},
		{"not an object", 400, "PGRST102"},
	}
	for _, e := range errs {
		status, body, _ := call(t, s, "POST", "notes", key, e.body)
		assert.Equal(t, e.status, status, "%v", e.body)
		assert.Equal(t, e.code, errCode(t, body), "%v", e.body)
	}

	// A singular write that affects several rows fails and is rolled back.
	status, _, _ = call(t, s, "PATCH", "notes", key, map[string]any{"n": 5},
		"Accept", "application/vnd.pgrst.object+json")
	assert.Equal(t, http.StatusNotAcceptable, status)
	status, body, _ = call(t, s, "GET", "notes?n=eq.5", key, nil)
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `[]`, string(body))
}

func jsonArray(t *testing.T, b []byte) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	require.NoError(t, json.Unmarshal(b, &out), "%s", b)
	return out
}

func TestRPC(t *testing.T) {
	s, _ := newServer(t)
	key := s.ServiceKey()
	ok := []struct {
		fn     string
		args   any
		status int
		want   string
	}{
		{"add_them", map[string]any{"a": 1, "b": 2}, 200, `3`},
		{"plus_one", map[string]any{"arr": []int{1, 2, 3}}, 200, `[2,3,4]`},
		{"greet", map[string]any{"who": "ops"}, 200, `"hello ops"`},
		{"greet", map[string]any{"who": "ops", "greeting": "hi"}, 200, `"hi ops"`},
		{"note_docs", map[string]any{"ids": []int{1, 3}}, 200, `[{"id":1,"body":"alice public"},{"id":3,"body":"bob, private"}]`},
		{"note_docs", map[string]any{"ids": []int{}}, 200, `[]`},
		{"note_rows", map[string]any{"min_id": 3}, 200, `[{"id":3,"body":"bob, private"}]`},
		{"note_rows", nil, 200, `[{"id":1,"body":"alice public"},{"id":2,"body":"alice private"},{"id":3,"body":"bob, private"}]`},
		{"touch", map[string]any{"p_body": "via rpc"}, 204, ``},
	}
	for _, c := range ok {
		status, body, _ := call(t, s, "POST", "rpc/"+c.fn, key, c.args)
		require.Equal(t, c.status, status, "%s: %s", c.fn, body)
		if c.want != "" {
			assert.JSONEq(t, c.want, string(body), c.fn)
		}
	}
	status, body, _ := call(t, s, "POST", "rpc/first_note", key, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, string(body), `"slug":"a1"`, "a composite is one object")

	errs := []struct {
		fn     string
		key    string
		args   any
		status int
		code   string
	}{
		{"nope", key, nil, 404, "PGRST202"},
		{"add_them", key, map[string]any{"a": 1}, 404, "PGRST202"},
		{"add_them", key, map[string]any{"a": 1, "b": 2, "c": 3}, 404, "PGRST202"},
		{"add_them", key, map[string]any{"a": "x", "b": 2}, 400, "22P02"},
		{"touch", s.AnonKey(), map[string]any{"p_body": "x"}, 401, "42501"},
		{"touch", s.UserToken(alice), map[string]any{"p_body": "x"}, 403, "42501"},
		{"sneaky_write", key, map[string]any{"p_body": "x"}, 405, "25006"},
		{"fail", key, map[string]any{"code": "P0001", "msg": "raised"}, 400, "P0001"},
		{"fail", key, map[string]any{"code": "PT402", "msg": "pay"}, 402, "PT402"},
		{"fail", key, map[string]any{"code": "22023", "msg": "bad"}, 400, "22023"},
		{"fail", key, map[string]any{"code": "42883", "msg": "gone"}, 404, "42883"},
		{"fail", key, map[string]any{"code": "40001", "msg": "serialization"}, 500, "40001"},
		{"fail", key, map[string]any{"code": "40P01", "msg": "deadlock"}, 500, "40P01"},
		{"fail", key, map[string]any{"code": "53300", "msg": "too many connections"}, 503, "53300"},
	}
	for _, e := range errs {
		status, body, _ := call(t, s, "POST", "rpc/"+e.fn, e.key, e.args)
		assert.Equal(t, e.status, status, "%s %v: %s", e.fn, e.args, body)
		assert.Equal(t, e.code, errCode(t, body), "%s %v", e.fn, e.args)
	}
	status, _, _ = call(t, s, "GET", "rpc/add_them?a=1&b=2", key, nil)
	assert.Equal(t, http.StatusMethodNotAllowed, status)
}
