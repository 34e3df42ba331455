package postgresttest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

// TestMain gives the tests a PostgreSQL (pgtest) and checks for leaked goroutines.
func TestMain(m *testing.M) { pgtest.Main(m) }

const testSecret = "super-secret-jwt-token-with-at-least-32-characters-long"

// The scratch schema: a notes table under row level security (anon reads
// public notes only and cannot write; a user reads and writes their own;
// service_role bypasses RLS) and functions of every result shape.
const schemaSQL = `
CREATE TABLE owners (id uuid PRIMARY KEY);
CREATE TABLE notes (
  id         bigserial PRIMARY KEY,
  slug       text UNIQUE,
  owner      uuid REFERENCES owners (id) DEFAULT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid,
  body       text NOT NULL,
  public     boolean NOT NULL DEFAULT false,
  n          int CHECK (n >= 0),
  tags       text[],
  meta       jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON notes TO anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO authenticated, service_role;
GRANT SELECT ON owners TO anon, authenticated, service_role;
GRANT USAGE ON SEQUENCE notes_id_seq TO authenticated, service_role;
CREATE POLICY notes_public ON notes FOR SELECT TO anon USING (public);
CREATE POLICY notes_own ON notes FOR ALL TO authenticated
  USING (owner = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid)
  WITH CHECK (owner = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);

CREATE FUNCTION add_them(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
CREATE FUNCTION plus_one(arr int[]) RETURNS int[] LANGUAGE sql IMMUTABLE AS
  'SELECT array_agg(x + 1 ORDER BY i) FROM unnest(arr) WITH ORDINALITY u(x, i)';
CREATE FUNCTION greet(who text, greeting text DEFAULT 'hello') RETURNS text LANGUAGE sql IMMUTABLE AS
  $f$SELECT greeting || ' ' || who$f$;
CREATE FUNCTION note_docs(ids bigint[]) RETURNS SETOF jsonb LANGUAGE sql STABLE AS
  'SELECT jsonb_build_object(''id'', n.id, ''body'', n.body) FROM notes n WHERE n.id = ANY(ids) ORDER BY n.id';
CREATE FUNCTION note_rows(min_id bigint DEFAULT 0) RETURNS TABLE (id bigint, body text) LANGUAGE sql STABLE AS
  'SELECT n.id, n.body FROM notes n WHERE n.id >= min_id ORDER BY n.id';
CREATE FUNCTION first_note() RETURNS notes LANGUAGE sql STABLE AS 'SELECT * FROM notes ORDER BY id LIMIT 1';
CREATE FUNCTION touch(p_body text) RETURNS void LANGUAGE sql AS
  'INSERT INTO notes (body, public) VALUES (p_body, true)';
CREATE FUNCTION sneaky_write(p_body text) RETURNS int LANGUAGE sql STABLE AS
  $f$SELECT nextval('notes_id_seq')::int$f$;
CREATE FUNCTION fail(code text, msg text) RETURNS int LANGUAGE plpgsql AS
  $f$BEGIN RAISE EXCEPTION USING ERRCODE = code, MESSAGE = msg, DETAIL = 'd', HINT = 'h'; END$f$;
REVOKE EXECUTE ON FUNCTION touch(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION touch(text) TO service_role;
`

// scratchDB is a fresh migrated database (pgtest) with the scratch schema
// added; it returns its URL and a superuser pool on it.
func scratchDB(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	db := pgtest.NewDB(t)
	_, err := db.Pool.Exec(context.Background(), schemaSQL)
	require.NoError(t, err)
	return db.URL, db.Pool
}

// call makes one request with key as both apikey and bearer token.
func call(t *testing.T, s *Server, method, path, key string, body any, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+"/rest/v1/"+path, rd)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("apikey", key)
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Authorization" {
			req.Header.Set(hdr[i], hdr[i+1])
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b, resp.Header
}

// errCode is the code of a PostgREST error body.
func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Code    string  `json:"code"`
		Message string  `json:"message"`
		Details *string `json:"details"`
		Hint    *string `json:"hint"`
	}
	require.NoError(t, json.Unmarshal(body, &e), "error body %s", body)
	require.NotEmpty(t, e.Message, "error body %s", body)
	return e.Code
}
