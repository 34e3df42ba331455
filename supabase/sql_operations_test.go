package supabase_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

// finishRun drives a fresh run to a terminal status the way the daemon does.
func finishRun(t *testing.T, pool *pgxpool.Pool, id, status string, finishedAgo time.Duration) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `UPDATE runs SET status = 'running', claimed_by = 'w', attempt = 1, started_at = now() WHERE id = $1`, id)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE runs SET status = $2, finished_at = now() - make_interval(secs => $3) WHERE id = $1`,
		id, status, finishedAgo.Seconds())
	require.NoError(t, err)
}

// seedRows runs sql as the database's own functions write run rows (past the
// row fence, which admits rows only for runs in flight), to seed a history.
func seedRows(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, `SELECT opsd_fenced_write(true)`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, sql, args...)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
}

// TestCronValidation: the database refuses a bad schedule on write, whoever
// writes it, naming the field and its position.
func TestCronValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	bad := []struct{ cron, want string }{
		{"* * * *", "has 4 fields, want 5"},
		{"0 25 * * *", "hour field '25' at position 3: 25 is out of range 0-23"},
		{"0 1,2,x * * *", "hour field 'x' at position 7"},
		{"*/0 * * * *", "minute field '*/0' at position 1: step 0"},
		{"5-1 * * * *", "range 5-1 runs backwards"},
		{"0 0 * foo *", "month field 'foo' at position 7"},
		{"0 0 * * 8", "day-of-week field '8' at position 9"},
		{"0 0 32 * *", "day-of-month field '32' at position 5"},
		{"@every 500ms", "@every needs a duration of at least 1s"},
		{"@every banana", "is not a duration"},
		{"@sometimes", "unknown macro"},
		{"0 0 30 2 *", "never fires"},
	}
	for i, tc := range bad {
		_, err := db.Pool.Exec(ctx, `INSERT INTO run_schedules (name, cron, env, kind) VALUES ($1, $2, 'dev', 'healthcheck')`,
			fmt.Sprintf("bad-%d", i), tc.cron)
		require.Error(t, err, tc.cron)
		require.Contains(t, err.Error(), tc.want, tc.cron)
	}
	_, err := db.Pool.Exec(ctx, `INSERT INTO run_schedules (name, cron, timezone, env, kind) VALUES ('tz', '* * * * *', 'Mars/Base', 'dev', 'spec')`)
	require.ErrorContains(t, err, "timezone 'Mars/Base' is not a known time zone")

	next := func(cron, tz, after string) string {
		t.Helper()
		var got time.Time
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT opsd_cron_next($1, $2, $3::timestamptz)`, cron, tz, after).Scan(&got), cron)
		return got.UTC().Format(time.RFC3339)
	}
	good := []struct{ cron, tz, after, want string }{
		{"*/15 * * * *", "UTC", "2026-01-01T10:07:00Z", "2026-01-01T10:15:00Z"},
		{"0 9 * * mon-fri", "UTC", "2026-01-03T10:07:00Z", "2026-01-05T09:00:00Z"},
		{"0 0 1,15 * 5", "UTC", "2026-01-02T10:07:00Z", "2026-01-09T00:00:00Z"}, // both day fields: either matches
		{"30 2 * JAN,jul SUN", "Europe/Paris", "2026-01-02T10:07:00Z", "2026-01-04T01:30:00Z"},
		{"0 0 * * 7", "UTC", "2026-01-02T10:07:00Z", "2026-01-04T00:00:00Z"},
		{"@every 2s", "UTC", "2026-01-02T10:07:01Z", "2026-01-02T10:07:02Z"},
		{"@every 1h30m", "UTC", "2026-01-02T10:07:01Z", "2026-01-02T10:30:00Z"},
		{"@daily", "UTC", "2026-01-02T10:07:01Z", "2026-01-03T00:00:00Z"},
		{"0 12 29 2 *", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T12:00:00Z"},
	}
	for _, tc := range good {
		require.Equal(t, tc.want, next(tc.cron, tc.tz, tc.after), tc.cron)
	}

	// The browser writes schedules through PostgREST: same validation.
	err = asRole(ctx, db.Pool, "authenticated", userA, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO run_schedules (name, cron, env, kind) VALUES ('u', '61 * * * *', 'dev', 'spec')`)
		return err
	})
	require.ErrorContains(t, err, "minute field '61' at position 1")
}

// TestScheduleCatchUp: ticks missed while every daemon was down are enqueued
// once, with a System event counting the skipped ones; a schedule whose run
// is still in flight does not pile up; a paused one does nothing.
func TestScheduleCatchUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	var sid string
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO run_schedules (name, cron, env, kind, lane, input)
		VALUES ('hourly-check', '0 * * * *', 'staging', 'healthcheck', 'C', '{"target":"web"}') RETURNING id`).Scan(&sid))
	// The daemons were down for five hours and a bit.
	_, err := db.Pool.Exec(ctx, `UPDATE run_schedules SET next_run_at = date_trunc('hour', now()) - interval '5 hours' WHERE id = $1`, sid)
	require.NoError(t, err)

	enqueue := func() (enq, skipped int) {
		t.Helper()
		var raw []byte
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT opsd_enqueue_due_schedules(10)`).Scan(&raw))
		var r struct{ Enqueued, Skipped int }
		require.NoError(t, json.Unmarshal(raw, &r))
		return r.Enqueued, r.Skipped
	}
	enq, _ := enqueue()
	require.Equal(t, 1, enq)
	enq, _ = enqueue()
	require.Equal(t, 0, enq, "nothing is due any more")

	var runID, lane, env string
	var scheduledFor, nextRun time.Time
	var input []byte
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT id, lane, env, input, scheduled_for FROM runs WHERE schedule_id = $1`, sid).
		Scan(&runID, &lane, &env, &input, &scheduledFor))
	require.Equal(t, "C", lane)
	require.Equal(t, "staging", env)
	require.JSONEq(t, `{"target":"web"}`, string(input))
	require.Equal(t, 0, scheduledFor.Minute(), "the catch-up run is the latest due tick")
	require.WithinDuration(t, time.Now(), scheduledFor, time.Hour)
	var msg string
	var skippedTicks int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT message, (data->>'skipped_ticks')::int FROM run_events WHERE run_id = $1 AND source = 'System'`, runID).
		Scan(&msg, &skippedTicks))
	require.Equal(t, 5, skippedTicks)
	require.Contains(t, msg, "5 tick(s) missed")
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT next_run_at FROM run_schedules WHERE id = $1`, sid).Scan(&nextRun))
	require.True(t, nextRun.After(time.Now()))

	// The run is still queued: the next tick is skipped (overlap skip), and audited.
	_, err = db.Pool.Exec(ctx, `UPDATE run_schedules SET next_run_at = now() - interval '1 second' WHERE id = $1`, sid)
	require.NoError(t, err)
	enq, skipped := enqueue()
	require.Equal(t, [2]int{0, 1}, [2]int{enq, skipped})
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'schedule.skipped' AND schedule_id = $1`, sid).Scan(&n))
	require.Equal(t, 1, n)

	// With overlap queue, it queues another.
	_, err = db.Pool.Exec(ctx, `UPDATE run_schedules SET overlap = 'queue' WHERE id = $1`, sid)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE run_schedules SET next_run_at = now() - interval '1 second' WHERE id = $1`, sid)
	require.NoError(t, err)
	enq, _ = enqueue()
	require.Equal(t, 1, enq)

	// Paused: no next_run_at, nothing enqueued; resumed: due again in the future.
	_, err = db.Pool.Exec(ctx, `UPDATE run_schedules SET enabled = false WHERE id = $1`, sid)
	require.NoError(t, err)
	var next *time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT next_run_at FROM run_schedules WHERE id = $1`, sid).Scan(&next))
	require.Nil(t, next)
	enq, _ = enqueue()
	require.Equal(t, 0, enq)
	_, err = db.Pool.Exec(ctx, `UPDATE run_schedules SET enabled = true WHERE id = $1`, sid)
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT next_run_at FROM run_schedules WHERE id = $1`, sid).Scan(&next))
	require.NotNil(t, next)
	require.True(t, next.After(time.Now()))
}

// TestRetryRun: the owner may retry a failed run, another user may not, and
// a run still in flight cannot be retried.
func TestRetryRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	sess := insertSession(t, db.Pool)
	var failed, running string
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, plan, input, session_id, lane, created_by, priority)
		VALUES ('prod', 'deploy', '{"title":"ship"}', '{"repo":"acme/web"}', $1, 'B', $2, 7) RETURNING id`, sess, userA).Scan(&failed))
	finishRun(t, db.Pool, failed, "error", 0)
	_, err := db.Pool.Exec(ctx, `UPDATE runs SET approved_by = 'bob', approved_at = now() WHERE id = $1`, failed)
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, created_by) VALUES ('dev', 'spec', $1) RETURNING id`, userA).Scan(&running))
	_, err = db.Pool.Exec(ctx, `UPDATE runs SET status = 'running', claimed_by = 'w', attempt = 1 WHERE id = $1`, running)
	require.NoError(t, err)

	retry := func(role, sub, id string) (*string, error) {
		var out *string
		err := asRole(ctx, db.Pool, role, sub, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT retry_run($1)::text`, id).Scan(&out)
		})
		return out, err
	}
	got, err := retry("authenticated", userB, failed)
	require.NoError(t, err)
	require.Nil(t, got, "another user may not retry A's run")
	_, err = retry("authenticated", userA, running)
	require.ErrorContains(t, err, "is running: only runs that ended error or canceled can be retried")

	got, err = retry("authenticated", userA, failed)
	require.NoError(t, err)
	require.NotNil(t, got)
	var env, kind, lane, status string
	var plan, input []byte
	var retryOf, session, createdBy string
	var prio int
	var approved *time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT env, kind, lane, status, plan, input, retry_of::text, session_id::text, created_by::text, priority, approved_at
		FROM runs WHERE id = $1`, *got).Scan(&env, &kind, &lane, &status, &plan, &input, &retryOf, &session, &createdBy, &prio, &approved))
	require.Equal(t, []string{"prod", "deploy", "B", "queued", failed, sess, userA}, []string{env, kind, lane, status, retryOf, session, createdBy})
	require.JSONEq(t, `{"title":"ship"}`, string(plan))
	require.JSONEq(t, `{"repo":"acme/web"}`, string(input))
	require.Equal(t, 7, prio)
	require.Nil(t, approved, "approval is asked again")

	// One retry at a time: a second one waits until the first has finished.
	_, err = retry("authenticated", userA, failed)
	require.ErrorContains(t, err, "already has a retry that has not finished (run "+*got+")")
	finishRun(t, db.Pool, *got, "error", 0)
	again, err := retry("authenticated", userA, failed)
	require.NoError(t, err)
	require.NotNil(t, again)
	// Nor through another run of the chain: the finished first copy cannot
	// be retried while the second copy is live.
	_, err = retry("authenticated", userA, *got)
	require.ErrorContains(t, err, "already has a retry that has not finished (run "+*again+")")

	// A canceled run whose daemon is still stopping it has not ended.
	_, err = db.Pool.Exec(ctx, `SELECT cancel_run($1)`, running)
	require.NoError(t, err)
	_, err = retry("authenticated", userA, running)
	require.ErrorContains(t, err, "is canceled but still stopping")
}

// TestRetention: exactly the rows past their age go, queued and running runs
// are untouched, and a call deletes at most a batch per table.
func TestRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	day := 24 * time.Hour
	mk := func(status string, ago time.Duration, events int) string {
		id := insertRun(t, db.Pool, nil, "A", 100)
		if status != "queued" {
			if status == "running" {
				_, err := db.Pool.Exec(ctx, `UPDATE runs SET status = 'running', claimed_by = 'w', attempt = 1 WHERE id = $1`, id)
				require.NoError(t, err)
			} else {
				finishRun(t, db.Pool, id, status, ago)
			}
		}
		seedRows(t, db.Pool, `INSERT INTO run_events (run_id, seq, level, source, message, ts)
			SELECT $1, g, 'info', 'System', 'e', now() - make_interval(secs => $2) FROM generate_series(1, $3) g`, id, ago.Seconds(), events)
		seedRows(t, db.Pool, `INSERT INTO artifacts (run_id, kind, title, value, created_at) VALUES ($1, 'file', 't', 'v', now() - make_interval(secs => $2))`, id, ago.Seconds())
		seedRows(t, db.Pool, `INSERT INTO run_steps (run_id, idx, step_id, title) VALUES ($1, 0, 's', 't')`, id)
		return id
	}
	ancient := mk("success", 400*day, 7) // past the runs age: goes entirely
	old := mk("error", 40*day, 5)        // past the events age only
	recent := mk("success", 2*day, 3)    // kept
	queued := mk("queued", 400*day, 4)   // never pruned
	running := mk("running", 400*day, 4) // never pruned
	_ = recent
	// An audit trail older than any age: without an audit_log age it stays,
	// even the entries of runs that go.
	_, err := db.Pool.Exec(ctx, `UPDATE audit_log SET at = now() - interval '1000 days'`)
	require.NoError(t, err)
	auditBefore := countRows(t, db.Pool, `SELECT count(*) FROM audit_log`)
	require.Positive(t, countRows(t, db.Pool, `SELECT count(*) FROM audit_log WHERE run_id = $1`, ancient))

	prune := func(dry bool) map[string]any {
		var raw []byte
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT opsd_prune('w1', p_run_events => $1, p_runs => $2, p_batch => 3, p_dry_run => $3)`,
			int64(30*day/time.Second), int64(365*day/time.Second), dry).Scan(&raw))
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	dry := prune(true)
	require.EqualValues(t, 12, dry["run_events"], "7 of the ancient run + 5 of the old one")
	require.EqualValues(t, 1, dry["runs"])
	require.EqualValues(t, 1, dry["artifacts"], "artifacts of the ancient run (no artifacts age set)")
	require.EqualValues(t, 1, dry["run_steps"])
	require.EqualValues(t, 0, dry["audit_log"], "no audit_log age")

	first := prune(false)
	require.EqualValues(t, 3, first["run_events"], "a batch is at most 3 rows")
	require.EqualValues(t, 0, first["runs"], "a run goes once its rows are gone")

	// Another daemon is refused while w1 holds the lease.
	var raw []byte
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT opsd_prune('w2', p_runs => 1)`).Scan(&raw))
	require.JSONEq(t, `{"busy":"w1"}`, string(raw))

	sum := func(r map[string]any) int {
		return int(r["run_events"].(float64) + r["runs"].(float64) + r["artifacts"].(float64) + r["run_steps"].(float64))
	}
	total := sum(first)
	for i := 0; i < 20; i++ {
		n := sum(prune(false))
		if n == 0 {
			break
		}
		total += n
	}
	require.Equal(t, 12+1+1+1, total)
	// The pass is over: another daemon may prune now.
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT opsd_prune('w2', p_runs => 86400 * 1000)`).Scan(&raw))
	require.JSONEq(t, `{"run_events":0,"run_steps":0,"artifacts":0,"runs":0,"audit_log":0,"dry_run":false}`, string(raw))

	count := func(sql string, args ...any) int { return countRows(t, db.Pool, sql, args...) }
	require.Equal(t, auditBefore, count(`SELECT count(*) FROM audit_log`), "the audit trail is kept by default")
	require.Positive(t, count(`SELECT count(*) FROM audit_log WHERE run_id = $1`, ancient), "a deleted run's entries stay")
	require.Zero(t, count(`SELECT count(*) FROM runs WHERE id = $1`, ancient))
	require.Equal(t, 1, count(`SELECT count(*) FROM runs WHERE id = $1`, old))
	require.Zero(t, count(`SELECT count(*) FROM run_events WHERE run_id = $1`, old))
	require.Equal(t, 1, count(`SELECT count(*) FROM artifacts WHERE run_id = $1`, old))
	require.Equal(t, 3, count(`SELECT count(*) FROM run_events WHERE run_id = $1`, recent))
	for _, id := range []string{queued, running} {
		require.Equal(t, 4, count(`SELECT count(*) FROM run_events WHERE run_id = $1`, id))
		require.Equal(t, 1, count(`SELECT count(*) FROM runs WHERE id = $1`, id))
	}
	// Keep everything by default: no ages, nothing deleted.
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT opsd_prune('w1', p_dry_run => true)`).Scan(&raw))
	require.JSONEq(t, `{"run_events":0,"run_steps":0,"artifacts":0,"runs":0,"audit_log":0,"dry_run":true}`, string(raw))
}

func countRows(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// TestAuditRetention: with an audit_log age, exactly the entries older than
// it go, oldest first and a batch at a time, whatever became of their run;
// a dry run deletes nothing; the service role still cannot delete entries
// itself, only through opsd_prune.
func TestAuditRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	count := func(sql string, args ...any) int { return countRows(t, db.Pool, sql, args...) }
	// A run finished long ago and pruned since: its entries name no run.
	gone := insertRun(t, db.Pool, nil, "A", 100)
	finishRun(t, db.Pool, gone, "success", 400*24*time.Hour)
	_, err := db.Pool.Exec(ctx, `UPDATE audit_log SET at = now() - interval '400 days' WHERE run_id = $1`, gone)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `DELETE FROM runs WHERE id = $1`, gone)
	require.NoError(t, err)
	fromGone := count(`SELECT count(*) FROM audit_log WHERE run_id = $1`, gone)
	require.Positive(t, fromGone)
	// Entries either side of a 30-day age, some naming schedules.
	seed := func(action, ago string, n int) {
		_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log (at, action, actor, schedule_id)
			SELECT now() - $2::interval - make_interval(mins => g), $1, 'test', gen_random_uuid() FROM generate_series(1, $3) g`, action, ago, n)
		require.NoError(t, err)
	}
	seed("old", "31 days", 7)
	seed("edge.old", "30 days", 1)         // 30 days and a minute
	seed("edge.young", "29 days 23:58", 1) // 29 days 23:59
	seed("young", "1 day", 4)
	recent := insertRun(t, db.Pool, nil, "A", 100) // its "created" entry is written now
	total := count(`SELECT count(*) FROM audit_log`)
	due := fromGone + 7 + 1

	const age = 30 * 24 * 3600
	prune := func(worker string, dry bool) map[string]any {
		var raw []byte
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT opsd_prune($1, p_audit_log => $2, p_batch => 3, p_dry_run => $3)`,
			worker, age, dry).Scan(&raw))
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	dry := prune("w1", true)
	require.EqualValues(t, due, dry["audit_log"])
	require.EqualValues(t, 0, dry["runs"].(float64)+dry["run_events"].(float64)+dry["run_steps"].(float64)+dry["artifacts"].(float64))
	require.Equal(t, total, count(`SELECT count(*) FROM audit_log`), "a dry run deletes nothing")

	first := prune("w1", false)
	require.EqualValues(t, 3, first["audit_log"], "a batch is at most 3 rows")
	require.Zero(t, count(`SELECT count(*) FROM audit_log WHERE run_id = $1`, gone), "the oldest go first")
	require.Contains(t, prune("w2", false), "busy", "audit rows left: w1 keeps the lease")
	deleted, batches := 3, 1
	for i := 0; i < 20; i++ {
		n := int(prune("w1", false)["audit_log"].(float64))
		if n == 0 {
			break
		}
		require.LessOrEqual(t, n, 3)
		deleted += n
		batches++
	}
	require.Equal(t, due, deleted)
	require.Equal(t, (due+2)/3, batches)
	require.NotContains(t, prune("w2", false), "busy", "the pass is over: the lease was given back")

	require.Equal(t, total-due, count(`SELECT count(*) FROM audit_log`))
	require.Zero(t, count(`SELECT count(*) FROM audit_log WHERE action IN ('old', 'edge.old')`))
	require.Equal(t, 5, count(`SELECT count(*) FROM audit_log WHERE action IN ('young', 'edge.young')`))
	require.Equal(t, 1, count(`SELECT count(*) FROM audit_log WHERE run_id = $1`, recent))

	var raw []byte
	err = db.Pool.QueryRow(ctx, `SELECT opsd_prune('w1', p_audit_log => -1)`).Scan(&raw)
	require.ErrorContains(t, err, "retention ages must not be negative")

	// The service role reads the trail and may prune it through opsd_prune,
	// but holds no DELETE of its own.
	var canDelete, canSelect bool
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT has_table_privilege('service_role', 'public.audit_log', 'DELETE'),
		has_table_privilege('service_role', 'public.audit_log', 'SELECT')`).Scan(&canDelete, &canSelect))
	require.False(t, canDelete)
	require.True(t, canSelect)
	seed("old.again", "31 days", 1)
	err = asRole(ctx, db.Pool, "service_role", "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE action = 'old.again'`)
		return err
	})
	require.ErrorContains(t, err, "permission denied for table audit_log")
	require.NoError(t, asRole(ctx, db.Pool, "service_role", "", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT opsd_prune('w3', p_audit_log => $1)`, age).Scan(&raw)
	}))
	require.JSONEq(t, `{"run_events":0,"run_steps":0,"artifacts":0,"runs":0,"audit_log":1,"dry_run":false}`, string(raw))
	require.Zero(t, count(`SELECT count(*) FROM audit_log WHERE action = 'old.again'`))
}

// TestAuditTrail: a scripted scenario, each action recorded with its actor by
// the database itself.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	start := time.Now().Add(-time.Second)

	var r1, r2, r3 string
	require.NoError(t, asRole(ctx, db.Pool, "authenticated", userA, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO runs (env, kind) VALUES ('prod', 'deploy') RETURNING id`).Scan(&r1); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO runs (env, kind) VALUES ('dev', 'spec') RETURNING id`).Scan(&r2); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO runs (env, kind) VALUES ('dev', 'spec') RETURNING id`).Scan(&r3)
	}))
	// B (a listed approver) approves A's r1 from the browser; A cancels r2
	// by a plain UPDATE.
	_, err := db.Pool.Exec(ctx, `INSERT INTO approvers (user_id, name) VALUES ($1, 'b')`, userB)
	require.NoError(t, err)
	require.NoError(t, asRole(ctx, db.Pool, "authenticated", userB, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT approve_run($1)`, r1)
		return err
	}))
	require.NoError(t, asRole(ctx, db.Pool, "authenticated", userA, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE runs SET status = 'canceled' WHERE id = $1`, r2)
		return err
	}))
	// A rejection is audited as rejected, not canceled.
	_, err = db.Pool.Exec(ctx, `SELECT reject_run($1, 'not today', 'carol')`, r3)
	require.NoError(t, err)
	// The operator retries r2 from the CLI, and manages a schedule.
	var r4 string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT retry_run($1, 'ops@host')::text`, r2).Scan(&r4))
	_, err = db.Pool.Exec(ctx, `SELECT opsd_schedule_save('{"name":"nightly","cron":"0 3 * * *","env":"dev","kind":"healthcheck"}', 'ops@host')`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `SELECT opsd_schedule_set('nightly', false, 'ops@host')`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `SELECT opsd_schedule_set('nightly', true, 'ops@host')`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `SELECT opsd_schedule_delete('nightly', 'ops@host')`)
	require.NoError(t, err)

	var raw []byte
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT opsd_audit($1)`, start).Scan(&raw))
	var entries []struct {
		Action string  `json:"action"`
		Actor  string  `json:"actor"`
		RunID  *string `json:"run_id"`
	}
	require.NoError(t, json.Unmarshal(raw, &entries))
	got := make([]string, len(entries))
	for i, e := range entries {
		run := "-"
		for name, id := range map[string]string{"r1": r1, "r2": r2, "r3": r3, "r4": r4} {
			if e.RunID != nil && *e.RunID == id {
				run = name
			}
		}
		got[i] = fmt.Sprintf("%s %s %s", e.Action, e.Actor, run)
	}
	require.Equal(t, []string{
		"created " + userA + " r1",
		"created " + userA + " r2",
		"created " + userA + " r3",
		"approved " + userB + " r1",
		"canceled " + userA + " r2",
		"rejected operator:carol r3",
		"retried operator:ops@host r4",
		"schedule.created operator:ops@host -",
		"schedule.paused operator:ops@host -",
		"schedule.resumed operator:ops@host -",
		"schedule.deleted operator:ops@host -",
	}, got)
	var canceledBy string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT canceled_by FROM runs WHERE id = $1`, r2).Scan(&canceledBy))
	require.Equal(t, userA, canceledBy)

	// Nobody may forge or erase the trail, not even the service role.
	for _, role := range []string{"service_role", "authenticated"} {
		err := asRole(ctx, db.Pool, role, userA, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM audit_log`)
			return err
		})
		require.ErrorContains(t, err, "permission denied", role)
	}
	// Filter by run.
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT opsd_audit(p_run_id => $1)`, r2).Scan(&raw))
	require.NoError(t, json.Unmarshal(raw, &entries))
	require.Len(t, entries, 2)
}

// TestRequeueRun: an attempt is requeued only by its owner, only before its
// action phase, with not_before set from the delay; attempt never drops.
func TestRequeueRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	id := insertRun(t, db.Pool, nil, "A", 100)
	set := func(phase string) {
		_, err := db.Pool.Exec(ctx, `UPDATE runs SET status = 'running', claimed_by = 'w', attempt = 2, attempts_used = 2, phase = $2 WHERE id = $1`, id, phase)
		require.NoError(t, err)
	}
	requeue := func(worker string, attempt int) bool {
		var ok bool
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT opsd_requeue_run($1, $2, $3, 30, 'preflight failed')`, id, worker, attempt).Scan(&ok))
		return ok
	}
	set("action")
	require.False(t, requeue("w", 2), "an attempt in its action phase is never requeued")
	set("preflight")
	require.False(t, requeue("other", 2), "fenced by worker")
	require.False(t, requeue("w", 1), "fenced by attempt")
	require.True(t, requeue("w", 2))
	var status string
	var attempt, used int
	var wait float64
	var claimed *string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status, attempt, attempts_used, claimed_by, extract(epoch FROM not_before - now())
		FROM runs WHERE id = $1`, id).Scan(&status, &attempt, &used, &claimed, &wait))
	require.Equal(t, "queued", status)
	require.Equal(t, [2]int{2, 2}, [2]int{attempt, used}, "attempt and attempts_used are kept")
	require.Nil(t, claimed)
	require.InDelta(t, 30, wait, 5)
	got, err := claim(ctx, db.Pool, "w2", "A", 1)
	require.NoError(t, err)
	require.Empty(t, got, "not claimable before not_before")
	require.True(t, requeue("w", 2), "a replay whose first answer was lost says it is requeued")
	require.False(t, requeue("w", 1), "an older attempt's replay does not")
	_, err = db.Pool.Exec(ctx, `UPDATE runs SET not_before = now() - interval '1 second' WHERE id = $1`, id) // the backoff is over
	require.NoError(t, err)
	got, err = claim(ctx, db.Pool, "w2", "A", 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Zero(t, countRows(t, db.Pool, `SELECT count(*) FROM runs WHERE id = $1 AND not_before IS NOT NULL`, id),
		"a claim clears the backoff it waited for")
	require.False(t, requeue("w", 2), "once claimed again (attempt 3) the old attempt is not queued")
	_, err = db.Pool.Exec(ctx, `SELECT opsd_requeue_run($1, 'w', 2, -1)`, id)
	require.ErrorContains(t, err, "p_delay_seconds = -1")
}

// TestRetryChainBound: a chain of retries is walked to its first run, and a
// chain longer than 100 is refused rather than walked only part of the way
// (which would let a far copy be retried while a near one is live).
func TestRetryChainBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	last := insertRun(t, db.Pool, nil, "A", 100)
	finishRun(t, db.Pool, last, "error", 0)
	for i := 0; i <= 100; i++ { // the first run and 101 copies: the last is 101 hops from the first
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT retry_run($1)::text`, last).Scan(&last), "retry %d", i)
		_, err := db.Pool.Exec(ctx, `SELECT cancel_run($1)`, last) // queued: canceled and finished at once
		require.NoError(t, err)
	}
	var id *string
	err := db.Pool.QueryRow(ctx, `SELECT retry_run($1)::text`, last).Scan(&id)
	require.ErrorContains(t, err, "ends a chain of more than 100 retries")
}
