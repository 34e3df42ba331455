package supabase_test

import (
	"context"
	"strings"
	"testing"
	"time"

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

// TestCronLimits: an expression is at most 128 characters, refused before
// any parsing with an error naming the limit; the next fire time is
// searched eight years ahead and no further, whatever the expression, and
// an expression that never fires is an error saying so.
func TestCronLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	insert := func(name, cron string) error {
		return asRole(ctx, db.Pool, "anon", "", func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO run_schedules (name, cron, env, kind) VALUES ($1, $2, 'dev', 'healthcheck')`, name, cron)
			return err
		})
	}
	// 128 characters: minute 00,0,0,...,0 (120) and four more fields.
	exact := "00" + strings.Repeat(",0", 59) + " * * * *"
	require.Len(t, exact, 128)
	require.NoError(t, insert("exact", exact))
	require.ErrorContains(t, insert("over", "0"+exact), "is 129 characters long: the limit is 128")
	// The review's expressions: 20,000 list items, and 57 kB in a stored
	// schedule.
	huge := strings.Repeat("1,", 20000) + "1 * * * *"
	require.ErrorContains(t, insert("huge", huge), "is 40009 characters long: the limit is 128")
	err := asRole(ctx, db.Pool, "anon", "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT opsd_cron_next($1)`, huge)
		return err
	})
	require.ErrorContains(t, err, "is 40009 characters long: the limit is 128")
	// Under the words, the CHECK.
	err = func() error {
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = tx.Exec(ctx, `ALTER TABLE run_schedules DISABLE TRIGGER run_schedules_guard`)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `INSERT INTO run_schedules (name, cron, env, kind) VALUES ('raw', $1, 'dev', 'spec')`, huge)
		return err
	}()
	require.ErrorContains(t, err, `violates check constraint "run_schedules_cron_check"`)

	next := func(cron, after string) (string, error) {
		var got time.Time
		err := asRole(ctx, db.Pool, "anon", "", func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT opsd_cron_next($1, 'UTC', $2::timestamptz)`, cron, after).Scan(&got)
		})
		return got.UTC().Format(time.RFC3339), err
	}
	// Never fires: an error, found by searching eight years, not millennia.
	_, err = next("0 0 30 2 *", "2026-01-01T00:00:00Z")
	require.ErrorContains(t, err, "cron '0 0 30 2 *': never fires within eight years after 2026-01-01")
	_, err = next("0 0 31 2,4,6,9,11 *", "2026-01-01T00:00:00Z")
	require.ErrorContains(t, err, "never fires within eight years")
	// Eight years is the longest gap of an expression whose days exist: 29
	// February skips 2100.
	got, err := next("0 12 29 2 *", "2096-03-01T00:00:00Z")
	require.NoError(t, err)
	require.Equal(t, "2104-02-29T12:00:00Z", got)
	// And the search stops there: 29 February on a Sunday (when either day
	// field is *, both must match) came in 2032, and comes next in 2060.
	got, err = next("0 0 29 2 */7", "2026-03-01T00:00:00Z")
	require.NoError(t, err)
	require.Equal(t, "2032-02-29T00:00:00Z", got)
	_, err = next("0 0 29 2 */7", "2032-03-01T00:00:00Z")
	require.ErrorContains(t, err, "never fires within eight years after 2032-03-01")
	got, err = next("0 0 29 2 */7", "2052-03-01T00:00:00Z")
	require.NoError(t, err)
	require.Equal(t, "2060-02-29T00:00:00Z", got)

	// The parser's parts are the owner's: browsers reach them only through
	// opsd_cron_next, after the limit.
	for _, call := range []string{
		`SELECT opsd_cron_parse('* * * * *')`,
		`SELECT opsd_cron_field('* * * * *', '*', 'minute', 1, 0, 59, NULL)`,
		`SELECT opsd_cron_next_parsed('{"every": 1}', 'UTC', now())`,
	} {
		for _, role := range []string{"anon", "authenticated"} {
			err := asRole(ctx, db.Pool, role, userA, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, call)
				return err
			})
			require.ErrorContains(t, err, "permission denied for function", "%s as %s", call, role)
		}
	}
}
