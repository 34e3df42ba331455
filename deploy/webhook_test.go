package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

// psql runs psql against dsn and returns its combined output.
func psql(t *testing.T, dsn string, args ...string) (string, error) {
	t.Helper()
	return psqlContext(t.Context(), dsn, args...)
}

func psqlContext(ctx context.Context, dsn string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", append([]string{"-X", "-q", "-A", "-t", "-d", dsn}, args...)...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=3")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// scratchDatabase creates an empty database for one test and returns its URL.
func scratchDatabase(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("psql"); err != nil {
		t.Fatal("psql not installed: install the Debian package postgresql-client")
	}
	admin := pgtest.AdminURL()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "opsd_deploy_test_" + hex.EncodeToString(b[:])
	out, err := psql(t, admin, "-c", "create database "+name)
	require.NoError(t, err, out)
	t.Cleanup(func() {
		// t.Context is already canceled when cleanups run.
		out, err := psqlContext(context.Background(), admin, "-c", "drop database if exists "+name+" with (force)")
		assert.NoError(t, err, out)
	})
	u, err := url.Parse(admin)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

// supabaseStub stands in for what the Supabase Dashboard installs: a
// supabase_functions.http_request() trigger function, here recording its
// arguments instead of calling pg_net, and a runs table.
const supabaseStub = `
create schema supabase_functions;
create table supabase_functions.calls (args text[], status text);
create function supabase_functions.http_request() returns trigger language plpgsql as $$
begin
  insert into supabase_functions.calls values (tg_argv, new.status);
  return new;
end $$;
create table public.runs (
  id uuid primary key default gen_random_uuid(),
  status text not null default 'queued'
);
`

func TestDatabaseWebhookSQL(t *testing.T) {
	t.Parallel()
	dsn := scratchDatabase(t)
	out, err := psql(t, dsn, "-v", "ON_ERROR_STOP=1", "-c", supabaseStub)
	require.NoError(t, err, out)

	script := filepath.Join(repoRoot(t), "deploy/supabase/database-webhook.sql")
	apply := func(opsdURL, secret string) (string, error) {
		args := []string{"-f", script}
		if opsdURL != "" {
			args = append(args, "-v", "opsd_url="+opsdURL)
		}
		if secret != "" {
			args = append(args, "-v", "webhook_secret="+secret)
		}
		return psql(t, dsn, args...)
	}

	// A secret with the characters most likely to break quoting.
	secret := `s3cret'"\` + "-0123456789abcdef"
	out, err = apply("https://opsd.example.com/", secret)
	require.NoError(t, err, out)
	// Applying again replaces the trigger (a new URL, a rotated secret).
	out, err = apply("https://opsd2.example.com", secret+"x")
	require.NoError(t, err, out)

	out, err = psql(t, dsn, "-c", "insert into public.runs default values",
		"-c", "insert into public.runs (status) values ('canceled')",
		"-c", "select count(*) from supabase_functions.calls",
		"-c", "select array_to_json(args) from supabase_functions.calls")
	require.NoError(t, err, out)
	rows := strings.Split(out, "\n")
	require.Len(t, rows, 2, "one call, for the queued run only: %s", out)
	assert.Equal(t, "1", rows[0])

	var args []string
	require.NoError(t, json.Unmarshal([]byte(rows[1]), &args))
	require.Len(t, args, 5)
	assert.Equal(t, "https://opsd2.example.com/v1/wake", args[0])
	assert.Equal(t, "POST", args[1])
	var headers map[string]string
	require.NoError(t, json.Unmarshal([]byte(args[2]), &headers), args[2])
	assert.Equal(t, map[string]string{
		"Content-Type":  "application/json",
		"Authorization": "Bearer " + secret + "x",
	}, headers)
	assert.Equal(t, "{}", args[3])
	assert.Equal(t, "5000", args[4])

	// Missing or bad variables fail loudly and change nothing.
	for _, bad := range [][2]string{{"", secret}, {"https://opsd.example.com", ""}, {"ftp://x", secret}, {"https://x", "short"}} {
		out, err := apply(bad[0], bad[1])
		assert.Error(t, err, "opsd_url=%q webhook_secret=%q: %s", bad[0], bad[1], out)
	}
	out, err = psql(t, dsn, "-c", "select pg_get_triggerdef(oid) like '%opsd2.example.com%' from pg_trigger where tgname = 'opsd_wake'")
	require.NoError(t, err, out)
	assert.Equal(t, "t", out)
}
