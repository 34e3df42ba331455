package supabaseadapter_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sb "github.com/opscontrolroom/opsd/adapters/supabaseadapter"
	"github.com/opscontrolroom/opsd/internal/pgtest"
)

const fromDDL = `
CREATE SCHEMA app;
CREATE TABLE app.orgs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
CREATE TABLE app.users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id bigint REFERENCES app.orgs (id),
  email text NOT NULL,
  nickname text,
  legacy_flag boolean DEFAULT false
);
CREATE INDEX users_email_idx ON app.users (email);
CREATE TABLE app.audit (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
ALTER TABLE app.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_read ON app.users FOR SELECT USING (true);
CREATE FUNCTION app.ping() RETURNS text LANGUAGE sql AS $$ SELECT 'pong' $$;
CREATE FUNCTION app.add(a int, b int) RETURNS int LANGUAGE sql AS $$ SELECT a + b $$;
INSERT INTO app.orgs (name) VALUES ('acme');
INSERT INTO app.users (org_id, email, nickname) VALUES (1, 'a@example.com', 'a');
`

const toDDL = `
CREATE SCHEMA app;
CREATE TABLE app.orgs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
CREATE TABLE app.users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id bigint REFERENCES app.orgs (id) ON DELETE CASCADE,
  email varchar(320) NOT NULL,
  nickname text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX users_email_idx ON app.users (lower(email));
CREATE INDEX users_org_idx ON app.users (org_id);
CREATE TABLE app.projects (
  id bigserial PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES app.orgs (id),
  name text CHECK (name <> '')
);
CREATE INDEX projects_org_idx ON app.projects (org_id);
ALTER TABLE app.projects ENABLE ROW LEVEL SECURITY;
CREATE POLICY projects_read ON app.projects FOR SELECT TO authenticated, anon USING (org_id > 0);
ALTER TABLE app.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_read ON app.users FOR SELECT USING (email <> '');
CREATE POLICY users_insert ON app.users AS RESTRICTIVE FOR INSERT WITH CHECK (true);
CREATE FUNCTION app.ping() RETURNS text LANGUAGE sql AS $$ SELECT 'pong!' $$;
CREATE FUNCTION app.mul(a int, b int) RETURNS int LANGUAGE sql AS $$ SELECT a * b $$;
`

// brief renders changes as "kind name action" for comparison.
func brief(changes []sb.Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, fmt.Sprintf("%s %s %s", c.Kind, c.Name, c.Action))
	}
	return out
}

func TestIntrospectAndDiffRealPostgres(t *testing.T) {
	t.Parallel()
	fromDB, toDB := scratchDB(t), scratchDB(t)
	_, err := fromDB.Exec(ctx(t), fromDDL)
	require.NoError(t, err)
	_, err = toDB.Exec(ctx(t), toDDL)
	require.NoError(t, err)

	from, err := sb.Introspect(ctx(t), fromDB, "app")
	require.NoError(t, err)
	to, err := sb.Introspect(ctx(t), toDB, "app")
	require.NoError(t, err)

	t.Run("introspection", func(t *testing.T) {
		require.Len(t, from.Tables, 3)
		users := from.Tables[2]
		require.Equal(t, "users", users.Name)
		assert.True(t, users.RLSEnabled)
		assert.False(t, users.RLSForced)
		assert.Equal(t, sb.Column{Name: "id", Type: "uuid", NotNull: true, Default: "gen_random_uuid()"}, users.Columns[0])
		assert.Equal(t, sb.Column{Name: "legacy_flag", Type: "boolean", Default: "false"}, users.Columns[4])
		assert.Equal(t, []sb.Index{{Name: "users_email_idx", Definition: "CREATE INDEX users_email_idx ON app.users USING btree (email)"}}, users.Indexes)
		assert.Equal(t, []sb.Constraint{
			{Name: "users_org_id_fkey", Type: "FOREIGN KEY", Definition: "FOREIGN KEY (org_id) REFERENCES app.orgs(id)"},
			{Name: "users_pkey", Type: "PRIMARY KEY", Definition: "PRIMARY KEY (id)"},
		}, users.Constraints)
		assert.Equal(t, []sb.Policy{{Name: "users_read", Permissive: true, Command: "SELECT", Roles: []string{"public"}, Using: "true"}}, users.Policies)
		orgs := from.Tables[1]
		assert.Equal(t, "ALWAYS", orgs.Columns[0].Identity)

		require.Len(t, from.Functions, 2)
		assert.Equal(t, "add(a integer, b integer)", from.Functions[0].Signature)
		assert.Equal(t, "integer", from.Functions[0].Returns)
		assert.Equal(t, "sql", from.Functions[0].Language)
		assert.Contains(t, from.Functions[0].Definition, "CREATE OR REPLACE FUNCTION app.add(a integer, b integer)")
		assert.Len(t, from.Functions[0].Hash, 64)

		projects := to.Tables[1]
		assert.Equal(t, []string{"anon", "authenticated"}, projects.Policies[0].Roles)
	})

	changes := sb.Diff(from, to)
	t.Run("diff", func(t *testing.T) {
		assert.Equal(t, []string{
			"table audit removed",
			"table projects added",
			"column created_at added",
			"column email changed",
			"column legacy_flag removed",
			"column nickname changed",
			"constraint users_email_key added",
			"constraint users_org_id_fkey changed",
			"index users_email_idx changed",
			"index users_org_idx added",
			"rls users changed",
			"policy users_insert added",
			"policy users_read changed",
			"function add(a integer, b integer) removed",
			"function mul(a integer, b integer) added",
			"function ping() changed",
		}, brief(changes))
		byName := map[string]sb.Change{}
		for _, c := range changes {
			byName[string(c.Kind)+" "+c.Name] = c
		}
		assert.Equal(t, "type: text -> character varying(320)", byName["column email"].Detail)
		assert.Equal(t, "not null: false -> true; default: (none) -> ''::text", byName["column nickname"].Detail)
		assert.Equal(t, "forced: false -> true", byName["rls users"].Detail)
		assert.Equal(t, "users", byName["column email"].Table)
		assert.Equal(t, "app", byName["column email"].Schema)
		assert.Empty(t, sb.Diff(from, from), "a schema does not differ from itself")
		assert.Equal(t, changes, sb.Diff(from, to), "deterministic")
	})

	t.Run("suggested migration brings from to to", func(t *testing.T) {
		sql := sb.SuggestMigration(changes)
		assert.Contains(t, sql, "review before applying")
		assert.Contains(t, sql, `-- DROP TABLE "app"."audit";`)
		assert.Contains(t, sql, `-- ALTER TABLE "app"."users" DROP COLUMN "legacy_flag";`)
		_, err := fromDB.Exec(ctx(t), sql)
		require.NoError(t, err, sql)

		after, err := sb.Introspect(ctx(t), fromDB, "app")
		require.NoError(t, err)
		assert.Equal(t, []string{"table audit removed", "column legacy_flag removed"}, brief(sb.Diff(after, to)),
			"only the commented-out destructive statements remain")
	})

	t.Run("unknown schema", func(t *testing.T) {
		_, err := sb.Introspect(ctx(t), fromDB, "nope")
		require.ErrorIs(t, err, sb.ErrSchemaNotFound)
	})
}

func TestIntrospectInTransaction(t *testing.T) {
	t.Parallel()
	db := scratchDB(t)
	tx, err := db.Begin(ctx(t)) // a pgx.Tx is used as is
	require.NoError(t, err)
	defer tx.Rollback(ctx(t)) //nolint:errcheck
	_, err = tx.Exec(ctx(t), `CREATE SCHEMA s; CREATE TABLE s.t (a int)`)
	require.NoError(t, err)

	got, err := sb.Introspect(ctx(t), tx, "s")
	require.NoError(t, err)
	assert.Equal(t, &sb.Schema{Name: "s", Tables: []sb.Table{{Name: "t", Columns: []sb.Column{{Name: "a", Type: "integer"}}}}}, got)
}

func TestIntrospectWithConn(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	conn, err := pgx.Connect(ctx(t), db.URL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx(t), `CREATE SCHEMA s; CREATE TABLE s.t (a int NOT NULL GENERATED ALWAYS AS IDENTITY, b int GENERATED ALWAYS AS (a * 2) STORED)`)
	require.NoError(t, err)

	got, err := sb.Introspect(ctx(t), conn, "s")
	require.NoError(t, err)
	assert.Equal(t, []sb.Column{
		{Name: "a", Type: "integer", NotNull: true, Identity: "ALWAYS"},
		{Name: "b", Type: "integer", Generated: "(a * 2)"},
	}, got.Tables[0].Columns)
}
