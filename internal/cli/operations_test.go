package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScheduleCommands(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t)
	ctx := testContext(t)
	run := c.runner(ctx)

	var out syncBuffer
	code, stderr := run(&out, "schedule", "add", "nightly", "--cron", "0 3 * * *", "--kind", "healthcheck", "--env", "prod",
		"--input", "target=web", "--lane", "B", "--as", "alice")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out.String(), "added schedule nightly (0 3 * * *), next run ")

	wantExit(t, run, 2, "minute field '61' at position 1", "schedule", "add", "bad", "--cron", "61 * * * *", "--kind", "spec", "--env", "dev")
	wantExit(t, run, 2, "a schedule with this name exists", "schedule", "add", "nightly", "--cron", "@daily", "--kind", "spec", "--env", "dev")
	wantExit(t, run, 2, `--kind "nope"`, "schedule", "add", "x", "--cron", "@daily", "--kind", "nope", "--env", "dev")
	wantExit(t, run, 2, "--cron is required", "schedule", "add", "x", "--kind", "spec", "--env", "dev")
	wantExit(t, run, 2, `--overlap "pile"`, "schedule", "add", "x", "--cron", "@daily", "--kind", "spec", "--env", "dev", "--overlap", "pile")

	out = syncBuffer{}
	code, stderr = run(&out, "schedule", "list")
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	require.Regexp(t, `^nightly\s+0 3 \* \* \*\s+UTC\s+healthcheck\s+prod\s+B\s+skip\s+\d{4}-`, lines[1])

	out = syncBuffer{}
	code, stderr = run(&out, "schedule", "pause", "nightly", "--as", "alice")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out.String(), "paused schedule nightly, next run paused")
	wantExit(t, run, 1, `no schedule named "ghost"`, "schedule", "pause", "ghost")
	out = syncBuffer{}
	code, stderr = run(&out, "schedule", "resume", "nightly", "--as", "alice")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `resumed schedule nightly, next run \d{4}-`, out.String())

	var input []byte
	var lane string
	require.NoError(t, c.db.Pool.QueryRow(ctx, `SELECT input, lane FROM run_schedules WHERE name = 'nightly'`).Scan(&input, &lane))
	require.JSONEq(t, `{"target":"web"}`, string(input))
	require.Equal(t, "B", lane)

	out = syncBuffer{}
	code, stderr = run(&out, "schedule", "rm", "nightly", "--as", "alice")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out.String(), "removed schedule nightly")
	wantExit(t, run, 1, `no schedule named "nightly"`, "schedule", "rm", "nightly")

	// Everything above is in the audit trail, with the operator.
	out = syncBuffer{}
	code, stderr = run(&out, "audit", "--format", "jsonl")
	require.Equal(t, 0, code, stderr)
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e struct {
			At      string          `json:"at"`
			Action  string          `json:"action"`
			Actor   string          `json:"actor"`
			RunID   *string         `json:"run_id"`
			Details json.RawMessage `json:"details"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &e), l)
		require.NotEmpty(t, e.At)
		require.Contains(t, l, `"run_id":null`)
		got = append(got, e.Action+" "+e.Actor)
	}
	require.Equal(t, []string{"schedule.created operator:alice", "schedule.paused operator:alice", "schedule.resumed operator:alice", "schedule.deleted operator:alice"}, got)
}

func TestRetryCommand(t *testing.T) {
	t.Parallel()
	c, ctx := daemonEnv(t, "noop", noopYAMLForOps)
	run := c.runner(ctx)
	var failed string
	require.NoError(t, c.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, template_id, lane) VALUES ('dev', 'healthcheck',
		(SELECT id FROM run_templates WHERE slug = 'noop'), 'A') RETURNING id`).Scan(&failed))
	_, err := c.db.Pool.Exec(ctx, `SELECT cancel_run($1)`, failed)
	require.NoError(t, err)

	var out syncBuffer
	code, stderr := run(&out, "retry", failed, "--follow", "--interval", "50ms", "--as", "bob")
	require.Equal(t, 0, code, stderr+out.String())
	newID := firstLine(out.String())
	require.NotEqual(t, failed, newID)
	var retryOf, status string
	require.NoError(t, c.db.Pool.QueryRow(ctx, `SELECT retry_of::text, status FROM runs WHERE id = $1`, newID).Scan(&retryOf, &status))
	require.Equal(t, failed, retryOf)
	require.Equal(t, "success", status)

	wantExit(t, run, 1, "only runs that ended error or canceled can be retried", "retry", newID)
	wantExit(t, run, 1, "no such run", "retry", "00000000-0000-4000-8000-000000000000")
	wantExit(t, run, 2, "is not a run id", "retry", "nope")

	out = syncBuffer{}
	code, stderr = run(&out, "audit", "--run", newID, "--format", "csv")
	require.Equal(t, 0, code, stderr)
	recs, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"at", "action", "actor", "run_id", "details"}, recs[0])
	require.Len(t, recs, 2)
	require.Equal(t, []string{"retried", "operator:bob", newID}, recs[1][1:4])
	wantExit(t, run, 2, `--format "xml"`, "audit", "--format", "xml")
	wantExit(t, run, 2, `--until "yesterday"`, "audit", "--until", "yesterday")
}

const noopYAMLForOps = `version: 1
steps:
  - {id: check, title: Check, kind: system, action: noop, phase: preflight}
`

func TestPruneCommand(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t)
	ctx := context.Background()
	var id string
	require.NoError(t, c.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind) VALUES ('dev', 'spec') RETURNING id`).Scan(&id))
	_, err := c.db.Pool.Exec(ctx, `UPDATE runs SET status = 'running', claimed_by = 'w', attempt = 1 WHERE id = $1`, id)
	require.NoError(t, err)
	_, err = c.db.Pool.Exec(ctx, `UPDATE runs SET status = 'error', finished_at = now() - interval '40 days' WHERE id = $1`, id)
	require.NoError(t, err)
	// Seeded as the database's own functions write rows (past the row fence).
	tx, err := c.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT opsd_fenced_write(true)`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO run_events (run_id, seq, level, source, message, ts)
		SELECT $1, g, 'info', 'System', 'e', now() - interval '40 days' FROM generate_series(1, 7) g`, id)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	// Audit entries: 4 older than retention.audit_log, the run's own (now) younger.
	_, err = c.db.Pool.Exec(ctx, `INSERT INTO audit_log (at, action, actor)
		SELECT now() - interval '400 days' - make_interval(mins => g), 'old', 'test' FROM generate_series(1, 4) g`)
	require.NoError(t, err)
	cfg := filepath.Join(t.TempDir(), "opsd.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("retention:\n  run_events: 30d\n  audit_log: 365d\n  batch: 3\n"), 0o600))
	run := c.runner(testContext(t))

	var out syncBuffer
	code, stderr := run(&out, "prune", "--dry-run", "--config", cfg)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `TABLE\s+would delete\nrun_events\s+7\nrun_steps\s+0\nartifacts\s+0\nruns\s+0\naudit_log\s+4\n$`, out.String())
	out = syncBuffer{}
	code, stderr = run(&out, "prune", "--config", cfg)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `TABLE\s+deleted\nrun_events\s+7\n(.*\n)*audit_log\s+4\n$`, out.String())
	var left, audit int
	require.NoError(t, c.db.Pool.QueryRow(ctx, `SELECT count(*) FROM run_events`).Scan(&left))
	require.Zero(t, left)
	require.NoError(t, c.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'old'`).Scan(&audit))
	require.Zero(t, audit)
	require.NoError(t, c.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE run_id = $1`, id).Scan(&audit))
	require.Equal(t, 1, audit, "younger entries stay")

	// Without ages, prune says everything is kept.
	code, stderr = run(nil, "prune")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "no retention ages are set")
}

func TestOperationsHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"schedule", "--help"}, {"schedule", "add", "--help"}, {"retry", "--help"}, {"prune", "--help"}, {"audit", "--help"}} {
		var out syncBuffer
		code, _ := runCLI(context.Background(), &out, args...)
		require.Equal(t, 0, code)
		require.True(t, bytes.Contains([]byte(out.String()), []byte("Examples:")), "%v has examples", args)
	}
}
