package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters/digitalocean/dotest"
	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
	"github.com/opscontrolroom/opsd/adapters/vercel/verceltest"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
	"github.com/opscontrolroom/opsd/internal/uuid"
	"github.com/opscontrolroom/opsd/supabase/migrations"
)

// doctorResults runs `opsd doctor --json` with args and returns the exit
// code and the results by check name.
func doctorResults(t *testing.T, run func(context.Context, *syncBuffer, ...string) (int, string), args ...string) (int, map[string]checkResult) {
	t.Helper()
	var out syncBuffer
	code, stderr := run(testContext(t), &out, append([]string{"doctor", "--json"}, args...)...)
	var list []checkResult
	require.NoError(t, json.Unmarshal([]byte(out.String()), &list), "stdout:\n%s\nstderr:\n%s", out.String(), stderr)
	byName := map[string]checkResult{}
	for _, r := range list {
		byName[r.Name] = r
	}
	require.Len(t, byName, len(doctorChecks()))
	return code, byName
}

func assertStatuses(t *testing.T, got map[string]checkResult, want map[string]string) {
	t.Helper()
	for name, status := range want {
		assert.Equal(t, status, got[name].Status, "%s: %s (hint: %s)", name, got[name].Detail, got[name].Hint)
	}
}

func TestDoctorPassesOnAMigratedDatabase(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t)
	code, res := doctorResults(t, c.run)
	assert.Equal(t, 0, code)
	assertStatuses(t, res, map[string]string{"config": checkPass, "connectivity": checkPass, "schema": checkPass,
		"service role": checkPass, "realtime": checkPass, "rls": checkPass, "clock": checkPass,
		"vercel": checkSkip, "github": checkSkip, "digitalocean": checkSkip})
	assert.Contains(t, res["rls"].Detail, "anon may not write run_events")

	var out syncBuffer
	code, _ = c.run(testContext(t), &out, "doctor")
	assert.Equal(t, 0, code)
	assert.Contains(t, out.String(), "PASS  schema        schema "+schemaVersion()+", as this binary needs\n")
	assert.Contains(t, out.String(), "doctor: 7 PASS, 0 FAIL, 0 WARN, 3 SKIP")
}

func TestDoctorFailsOnAnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	dbURL := emptyDatabase(t)
	run := func(ctx context.Context, out *syncBuffer, args ...string) (int, string) {
		return runCLI(ctx, out, append(args, "--database-url", dbURL, "--log-level", "warn")...)
	}
	code, res := doctorResults(t, run)
	assert.Equal(t, 1, code)
	assertStatuses(t, res, map[string]string{"connectivity": checkPass, "schema": checkFail,
		"service role": checkSkip, "realtime": checkSkip, "rls": checkSkip, "clock": checkPass})
	assert.Contains(t, res["schema"].Detail, fmt.Sprintf("%d migration(s) pending", len(migrations.Migrations())))
	assert.Contains(t, res["schema"].Hint, "opsd migrate")
}

// TestDoctorFindsHoles breaks what doctor guards, one thing per check.
func TestDoctorFindsHoles(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t)
	ctx := testContext(t)
	for _, sql := range []string{
		`GRANT INSERT ON public.run_events TO anon`, // usage of the id sequence is not needed for the probe with an id
		`CREATE POLICY doctor_hole ON public.run_events FOR INSERT TO anon WITH CHECK (true)`,
		`GRANT EXECUTE ON FUNCTION public.heartbeat_runs(text, uuid[], int[], int) TO anon`,
		`ALTER PUBLICATION supabase_realtime DROP TABLE public.run_events`,
		`INSERT INTO supabase_migrations.schema_migrations (version, name) VALUES ('29991231000000', 'opsd_future')`,
	} {
		_, err := c.db.Pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	code, res := doctorResults(t, c.run)
	assert.Equal(t, 1, code)
	assertStatuses(t, res, map[string]string{"schema": checkFail, "service role": checkFail, "realtime": checkFail, "rls": checkFail})
	assert.Contains(t, res["schema"].Detail, "newer than this binary's")
	assert.Contains(t, res["service role"].Detail, "anon may execute heartbeat_runs")
	assert.Contains(t, res["realtime"].Detail, "not in supabase_realtime: run_events")
	assert.Contains(t, res["rls"].Detail, "only the foreign key stopped the probe")
}

func TestDoctorOverREST(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t)
	srv := postgresttest.New(t, c.db.URL, "doctor-test-jwt-secret-at-least-32-bytes")
	run := func(ctx context.Context, out *syncBuffer, args ...string) (int, string) {
		return runCLI(ctx, out, append(args, "--database-url=", "--supabase-url", srv.URL, "--log-level", "warn")...)
	}

	code, res := doctorResults(t, run, "--supabase-service-role-key", srv.ServiceKey(), "--anon-key", srv.AnonKey())
	assert.Equal(t, 0, code)
	assertStatuses(t, res, map[string]string{"config": checkPass, "connectivity": checkPass, "schema": checkPass,
		"service role": checkPass, "realtime": checkSkip, "rls": checkPass, "clock": checkPass})
	assert.Contains(t, res["realtime"].Detail, "not checkable over REST")

	// Without the anon key the RLS check says what it needs.
	code, res = doctorResults(t, run, "--supabase-service-role-key", srv.ServiceKey())
	assert.Equal(t, 0, code)
	assert.Equal(t, checkSkip, res["rls"].Status)
	assert.Contains(t, res["rls"].Hint, "SUPABASE_ANON_KEY")

	// The anon key in place of the service-role key is caught.
	code, res = doctorResults(t, run, "--supabase-service-role-key", srv.AnonKey())
	assert.Equal(t, 1, code)
	assertStatuses(t, res, map[string]string{"connectivity": checkPass, "service role": checkFail})
	assert.Contains(t, res["service role"].Hint, "service_role key")
}

func TestDoctorChecksIntegrationTokens(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t)
	vc := verceltest.NewServer(t)
	gh := githubtest.New(t)
	gh.AddRepo("acme/web", "main")
	do := dotest.NewServer(t)
	config := func(vercelToken, ghToken, ghRepo, doToken string) string {
		p := filepath.Join(t.TempDir(), "opsd.yaml")
		yaml := fmt.Sprintf(`integrations:
  vercel: {token: %q, api_url: %q}
  github: {token: %q, api_url: %q, repo: %q}
  digitalocean: {token: %q, api_url: %q}
`, vercelToken, vc.URL, ghToken, gh.URL, ghRepo, doToken, do.URL)
		require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
		return p
	}

	code, res := doctorResults(t, c.run, "--config", config(vc.Token, gh.Token, "acme/web", do.Token))
	assert.Equal(t, 0, code)
	assertStatuses(t, res, map[string]string{"vercel": checkPass, "github": checkPass, "digitalocean": checkPass})
	assert.Contains(t, res["github"].Detail, "token can read acme/web (default branch main)")

	code, res = doctorResults(t, c.run, "--config", config("wrong", "wrong", "acme/web", "wrong"))
	assert.Equal(t, 1, code)
	assertStatuses(t, res, map[string]string{"vercel": checkFail, "github": checkFail, "digitalocean": checkFail})
	for _, name := range []string{"vercel", "github", "digitalocean"} {
		assert.Contains(t, res[name].Detail, "token rejected", name)
		assert.NotContains(t, res[name].Detail, "wrong", "%s: no token in the output", name)
	}

	code, res = doctorResults(t, c.run, "--config", config(vc.Token, gh.Token, "acme/gone", do.Token))
	assert.Equal(t, 1, code)
	assert.Equal(t, checkFail, res["github"].Status)
	assert.Contains(t, res["github"].Hint, "repository name")
}

// emptyDatabase creates a database without the schema, dropped at cleanup.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(pgtest.AdminURL())
	require.NoError(t, err)
	require.NotEmpty(t, u.Scheme, "the admin URL must be a postgres:// URL")
	name := fmt.Sprintf("opsd_cli_empty_%s", uuid.New()[:8])
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `CREATE DATABASE `+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		a, err := pgx.Connect(ctx, pgtest.AdminURL())
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer a.Close(ctx)
		_, _ = a.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	})
	u.Path = "/" + name
	return u.String()
}
