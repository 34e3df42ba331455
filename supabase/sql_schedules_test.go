package supabase_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

// TestLaneNames: a lane is 1 to 32 letters, digits, _ or -, on runs and on
// schedules, whoever writes. A 9000-character lane (the NOTIFY payload
// PostgreSQL refused, which stopped every schedule) is refused at INSERT,
// with an error that says what a lane is.
func TestLaneNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	long := strings.Repeat("L", 9000)
	schedule := func(role, sub, name, lane string) error {
		return asRole(ctx, db.Pool, role, sub, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO run_schedules (name, cron, env, kind, lane) VALUES ($1, '@every 1s', 'dev', 'healthcheck', $2)`, name, lane)
			return err
		})
	}
	run := func(role, sub, lane string) error {
		return asRole(ctx, db.Pool, role, sub, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO runs (env, kind, lane) VALUES ('dev', 'healthcheck', $1)`, lane)
			return err
		})
	}
	for _, p := range []struct{ role, sub string }{{"anon", ""}, {"authenticated", userA}, {"service_role", ""}} {
		err := schedule(p.role, p.sub, "poison-"+p.role, long)
		require.ErrorContains(t, err, "schedule 'poison-"+p.role+"': lane 'LLLL", p.role)
		require.ErrorContains(t, err, "(9000 characters) is not a lane name: use 1 to 32 letters, digits, _ or -", p.role)
		err = run(p.role, p.sub, long)
		require.ErrorContains(t, err, "runs.lane 'LLLL", p.role)
		require.ErrorContains(t, err, "(9000 characters) is not a lane name: use 1 to 32 letters, digits, _ or -", p.role)
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM run_schedules`).Scan(&n))
	require.Zero(t, n)

	for _, bad := range []string{"", " A", "a b", "A.B", "é", "A\n", strings.Repeat("x", 33)} {
		require.ErrorContains(t, run("anon", "", bad), "is not a lane name", "%q", bad)
		require.ErrorContains(t, schedule("anon", "", "bad", bad), "is not a lane name", "%q", bad)
	}
	// The UI's lanes, the daemon's defaults, and names the tests and
	// operators use.
	for i, good := range []string{"A", "B", "C", "D", "P", "Q", "S", "Z", "lane_2", "blue-green", strings.Repeat("x", 32)} {
		require.NoError(t, run("anon", "", good), good)
		require.NoError(t, schedule("anon", "", "good-"+string(rune('a'+i)), good), good)
	}
	// A lane changed later is checked too.
	err := asRole(ctx, db.Pool, "anon", "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE run_schedules SET lane = $1 WHERE name = 'good-a'`, long)
		return err
	})
	require.ErrorContains(t, err, "is not a lane name")

	// Under the words, the constraints hold on their own. runs_lane_check
	// is NOT VALID (rows written before it are not scanned), and still
	// checks every new row.
	var validated bool
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT convalidated FROM pg_constraint
		WHERE conrelid = 'public.runs'::regclass AND conname = 'runs_lane_check'`).Scan(&validated))
	require.False(t, validated)
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, `ALTER TABLE runs DISABLE TRIGGER runs_lane_guard`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO runs (env, kind, lane) VALUES ('dev', 'spec', $1)`, long)
	require.ErrorContains(t, err, `violates check constraint "runs_lane_check"`)
	require.NoError(t, tx.Rollback(ctx))
	err = func() error {
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = tx.Exec(ctx, `ALTER TABLE run_schedules DISABLE TRIGGER run_schedules_guard`)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `INSERT INTO run_schedules (name, cron, env, kind, lane) VALUES ('raw', '@daily', 'dev', 'spec', $1)`, long)
		return err
	}()
	require.ErrorContains(t, err, `violates check constraint "run_schedules_lane_check"`)
}
