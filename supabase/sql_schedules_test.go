package supabase_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
)

// enqueueDue runs one scheduler pass, as the daemon does.
func enqueueDue(t *testing.T, pool *pgxpool.Pool) executor.EnqueueResult {
	t.Helper()
	var raw []byte
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT opsd_enqueue_due_schedules(20)`).Scan(&raw))
	var r executor.EnqueueResult
	require.NoError(t, json.Unmarshal(raw, &r))
	return r
}

// withoutScheduleGuard runs sql with the schedules' validating trigger off,
// as only the table's owner can: a row the guard would refuse, standing in
// for any row that breaks later.
func withoutScheduleGuard(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, `ALTER TABLE run_schedules DISABLE TRIGGER run_schedules_guard`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, sql, args...)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `ALTER TABLE run_schedules ENABLE TRIGGER run_schedules_guard`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
}

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

	// A run written before the rule (here: past the trigger) keeps working:
	// it is claimed, heartbeated, finished and reaped like any other,
	// since only a new or changed lane is checked.
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `ALTER TABLE runs DISABLE TRIGGER runs_lane_guard`)
	require.NoError(t, err)
	var old string
	require.NoError(t, tx.QueryRow(ctx, `INSERT INTO runs (env, kind, lane) VALUES ('dev', 'spec', 'lane B') RETURNING id`).Scan(&old))
	_, err = tx.Exec(ctx, `ALTER TABLE runs ENABLE TRIGGER runs_lane_guard`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	var claimed int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM claim_run('w', 'lane B', 1)`).Scan(&claimed))
	require.Equal(t, 1, claimed)
	_, err = db.Pool.Exec(ctx, `UPDATE runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, old)
	require.NoError(t, err)
	var reaped int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM reap_stale_runs()`).Scan(&reaped))
	require.Equal(t, 1, reaped, "an old run's lane does not stop the reaper")
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

// TestScheduleFailureIsolated: a schedule whose tick cannot be enqueued is
// skipped and audited while every other due schedule is still enqueued. It
// is not tried again on every pass (next_run_at moves on), and fires again
// once the cause is gone.
func TestScheduleFailureIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	ids := map[string]string{}
	for name, cron := range map[string]string{"broken": "@every 1s", "healthy": "0 0 1 1 *", "other": "@every 8760h"} {
		var id string
		require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO run_schedules (name, cron, env, kind, overlap) VALUES ($1, $2, 'dev', 'healthcheck', 'queue')
			RETURNING id`, name, cron).Scan(&id))
		ids[name] = id
	}
	// A run the database refuses for one schedule: a trigger installed by
	// the test stands in for any error inside the enqueue (it was a
	// 9000-character lane, which pg_notify refused).
	_, err := db.Pool.Exec(ctx, `CREATE FUNCTION test_refuse_run() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
		  IF NEW.schedule_id = '`+ids["broken"]+`' THEN
		    RAISE EXCEPTION 'test: this run is refused';
		  END IF;
		  RETURN NEW;
		END $$`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `CREATE TRIGGER test_refuse_run BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION test_refuse_run()`)
	require.NoError(t, err)
	// Only broken's ticks come often; the others' come once a year.
	due := func(names ...string) {
		t.Helper()
		_, err := db.Pool.Exec(ctx, `UPDATE run_schedules SET next_run_at = now() - interval '1 second' WHERE name = ANY ($1)`, names)
		require.NoError(t, err)
	}
	runsOf := func(name string) int {
		return countRows(t, db.Pool, `SELECT count(*) FROM runs WHERE schedule_id = $1`, ids[name])
	}

	due("broken", "healthy", "other")
	pass := time.Now()
	require.Equal(t, executor.EnqueueResult{Enqueued: 2, Failed: 1}, enqueueDue(t, db.Pool))
	require.Equal(t, [3]int{0, 1, 1}, [3]int{runsOf("broken"), runsOf("healthy"), runsOf("other")})

	var actor string
	var details struct {
		Error        string    `json:"error"`
		SQLState     string    `json:"sqlstate"`
		ScheduledFor time.Time `json:"scheduled_for"`
		NextRunAt    time.Time `json:"next_run_at"`
	}
	var raw []byte
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT actor, details FROM audit_log WHERE action = 'schedule.failed' AND schedule_id = $1`,
		ids["broken"]).Scan(&actor, &raw))
	require.NoError(t, json.Unmarshal(raw, &details))
	require.Equal(t, "schedule:broken", actor)
	require.Equal(t, "test: this run is refused", details.Error)
	require.Equal(t, "P0001", details.SQLState)
	require.WithinDuration(t, pass, details.ScheduledFor, time.Minute)
	var next time.Time
	var last *time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT next_run_at, last_run_at FROM run_schedules WHERE id = $1`, ids["broken"]).Scan(&next, &last))
	require.True(t, next.Equal(details.NextRunAt), "the audit entry says when it is tried again")
	require.True(t, next.After(pass.Add(50*time.Second)), "tried again a minute later at the soonest, not on every pass: %s", next)
	require.Nil(t, last, "nothing ran")

	// The next pass does not try it again, and audits nothing more.
	require.Equal(t, executor.EnqueueResult{}, enqueueDue(t, db.Pool))
	require.Equal(t, 1, countRows(t, db.Pool, `SELECT count(*) FROM audit_log WHERE action = 'schedule.failed'`))

	// The cause gone, its next tick is enqueued.
	_, err = db.Pool.Exec(ctx, `DROP TRIGGER test_refuse_run ON runs`)
	require.NoError(t, err)
	due("broken")
	require.Equal(t, executor.EnqueueResult{Enqueued: 1}, enqueueDue(t, db.Pool))
	require.Equal(t, 1, runsOf("broken"))
}

// TestScheduleBrokenRows: rows that went bad behind the validator's back
// (written with its trigger off) cannot stop the scheduler either. One that
// no longer parses is audited and tried again an hour later; one that never
// fires again has its tick enqueued and its next_run_at cleared, audited.
func TestScheduleBrokenRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	for _, name := range []string{"garbled", "ended", "fine"} {
		// Once a year: no tick of their own comes due during the test.
		_, err := db.Pool.Exec(ctx, `INSERT INTO run_schedules (name, cron, env, kind) VALUES ($1, '0 0 1 1 *', 'dev', 'healthcheck')`, name)
		require.NoError(t, err)
	}
	withoutScheduleGuard(t, db.Pool, `UPDATE run_schedules SET cron = 'garbage' WHERE name = 'garbled'`)
	withoutScheduleGuard(t, db.Pool, `UPDATE run_schedules SET cron = '0 0 30 2 *' WHERE name = 'ended'`)
	_, err := db.Pool.Exec(ctx, `UPDATE run_schedules SET next_run_at = now() - interval '1 second'`)
	require.NoError(t, err)

	pass := time.Now()
	require.Equal(t, executor.EnqueueResult{Enqueued: 2, Failed: 1}, enqueueDue(t, db.Pool))
	audited := func(name string) string {
		t.Helper()
		var msg string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT a.details->>'error' FROM audit_log a JOIN run_schedules s ON s.id = a.schedule_id
			WHERE a.action = 'schedule.failed' AND s.name = $1`, name).Scan(&msg))
		return msg
	}
	require.Contains(t, audited("garbled"), "cron 'garbage': has 1 fields, want 5")
	require.Contains(t, audited("ended"), "has no fire time within eight years")
	var garbledNext time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT next_run_at FROM run_schedules WHERE name = 'garbled'`).Scan(&garbledNext))
	require.WithinDuration(t, pass.Add(time.Hour), garbledNext, time.Minute, "no next tick to wait for: an hour")
	var endedNext *time.Time
	var endedRuns int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT s.next_run_at, (SELECT count(*) FROM runs r WHERE r.schedule_id = s.id)
		FROM run_schedules s WHERE s.name = 'ended'`).Scan(&endedNext, &endedRuns))
	require.Nil(t, endedNext)
	require.Equal(t, 1, endedRuns, "its due tick still ran")
	require.Equal(t, executor.EnqueueResult{}, enqueueDue(t, db.Pool), "nothing spins")
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
