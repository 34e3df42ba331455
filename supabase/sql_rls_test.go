package supabase_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

const (
	userA = "aaaaaaaa-0000-4000-8000-000000000001"
	userB = "bbbbbbbb-0000-4000-8000-000000000002"
)

// TestRLS checks CONTRACT.md's security model as anon, two authenticated
// users and the service role, with the JWT claims set as Supabase sets them.
func TestRLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)

	// User A's run, and a shared run (no created_by), made as the users would.
	var runA, shared string
	require.NoError(t, asRole(ctx, db.Pool, "authenticated", userA, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO runs (env, kind, lane) VALUES ('dev', 'deploy', 'A') RETURNING id`).Scan(&runA)
	}))
	require.NoError(t, asRole(ctx, db.Pool, "anon", "", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO runs (env, kind) VALUES ('dev', 'healthcheck') RETURNING id`).Scan(&shared)
	}))
	var createdBy *string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT created_by::text FROM runs WHERE id = $1`, runA).Scan(&createdBy))
	require.Equal(t, userA, *createdBy, "created_by defaults to auth.uid()")

	type tc struct {
		name    string
		role    string
		sub     string
		sql     string
		args    []any
		allowed bool
		rows    int64 // for allowed statements: rows affected or returned, -1 to skip
	}
	cases := []tc{
		{"anon creates a session", "anon", "", `INSERT INTO sessions (title) VALUES ('s')`, nil, true, 1},
		{"user updates own session", "authenticated", userA, `UPDATE sessions SET title = 't'`, nil, true, -1},
		{"anon creates a queued run", "anon", "", `INSERT INTO runs (env, kind, lane, priority) VALUES ('dev', 'spec', 'B', 5)`, nil, true, 1},
		{"anon cannot set status on insert", "anon", "", `INSERT INTO runs (env, kind, status) VALUES ('dev', 'spec', 'running')`, nil, false, 0},
		{"user cannot set claim columns", "authenticated", userA, `INSERT INTO runs (env, kind, claimed_by) VALUES ('dev', 'spec', 'me')`, nil, false, 0},
		{"user cannot set created_by", "authenticated", userA, `INSERT INTO runs (env, kind, created_by) VALUES ('dev', 'spec', $1)`, []any{userB}, false, 0},
		{"user A reads own and shared runs", "authenticated", userA, `SELECT id FROM runs WHERE id IN ($1, $2)`, []any{runA, shared}, true, 2},
		{"user B cannot read A's run", "authenticated", userB, `SELECT id FROM runs WHERE id = $1`, []any{runA}, true, 0},
		{"anon cannot read A's run", "anon", "", `SELECT id FROM runs WHERE id = $1`, []any{runA}, true, 0},
		{"user may not set success", "authenticated", userA, `UPDATE runs SET status = 'success' WHERE id = $1`, []any{runA}, false, 0},
		{"user may not write claimed_by", "authenticated", userA, `UPDATE runs SET claimed_by = 'x' WHERE id = $1`, []any{runA}, false, 0},
		{"user B cannot cancel A's run by update", "authenticated", userB, `UPDATE runs SET status = 'canceled' WHERE id = $1`, []any{runA}, true, 0},
		{"user B cannot cancel A's run by rpc", "authenticated", userB, `SELECT 1 WHERE cancel_run($1)`, []any{runA}, true, 0},
		{"anon may not insert events", "anon", "", `INSERT INTO run_events (run_id, seq, level, source, message) VALUES ($1, 1, 'info', 'System', 'x')`, []any{shared}, false, 0},
		{"user may not insert events", "authenticated", userA, `INSERT INTO run_events (run_id, seq, level, source, message) VALUES ($1, 1, 'info', 'System', 'x')`, []any{runA}, false, 0},
		{"user may not update events", "authenticated", userA, `UPDATE run_events SET message = 'x'`, nil, false, 0},
		{"user may not delete events", "authenticated", userA, `DELETE FROM run_events`, nil, false, 0},
		{"user may not insert artifacts", "authenticated", userA, `INSERT INTO artifacts (run_id, kind, title, value) VALUES ($1, 'link', 't', 'v')`, []any{runA}, false, 0},
		{"user may not insert steps", "authenticated", userA, `INSERT INTO run_steps (run_id, idx, step_id, title) VALUES ($1, 0, 's', 't')`, []any{runA}, false, 0},
		{"anon may not claim", "anon", "", `SELECT claim_run('x', 'A', 1)`, nil, false, 0},
		{"user may not claim", "authenticated", userA, `SELECT claim_run('x', 'A', 1)`, nil, false, 0},
		{"user may not heartbeat", "authenticated", userA, `SELECT * FROM heartbeat_runs('x', ARRAY[$1::uuid], ARRAY[1])`, []any{runA}, false, 0},
		{"user may not finish", "authenticated", userA, `SELECT finish_run($1, 'x', 1, 'success')`, []any{runA}, false, 0},
		{"user may not complete", "authenticated", userA, `SELECT complete_run($1, 'success')`, []any{runA}, false, 0},
		{"anon may not reap", "anon", "", `SELECT * FROM reap_stale_runs()`, nil, false, 0},
		{"user may not append rows", "authenticated", userA, `SELECT * FROM append_run_rows('x', '[]', NULL)`, nil, false, 0},
		{"user may not add approvers", "authenticated", userA, `INSERT INTO approvers (user_id) VALUES ($1)`, []any{userA}, false, 0},
		{"user A (not an approver) may not approve", "authenticated", userA, `SELECT approve_run($1)`, []any{shared}, false, 0},
		{"anon may not approve", "anon", "", `SELECT approve_run($1)`, []any{shared}, false, 0},
		{"anon pings", "anon", "", `SELECT ping()`, nil, true, 1},
		{"anon enqueues", "anon", "", `SELECT enqueue_run('dev', 'healthcheck', '{"title":"x"}')`, nil, true, 1},
		{"service role claims", "service_role", "", `SELECT claim_run('svc', 'Z', 1)`, nil, true, 0},
		{"service role writes events only through the fenced functions", "service_role", "", `INSERT INTO run_events (run_id, seq, level, source, message) VALUES ($1, 1, 'info', 'System', 'x')`, []any{runA}, false, 0},
		{"service role reads everything", "service_role", "", `SELECT id FROM runs WHERE id IN ($1, $2)`, []any{runA, shared}, true, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var affected int64
			err := asRole(ctx, db.Pool, c.role, c.sub, func(tx pgx.Tx) error {
				if len(c.sql) > 6 && (c.sql[:6] == "SELECT") {
					rows, err := tx.Query(ctx, c.sql, c.args...)
					if err != nil {
						return err
					}
					for rows.Next() {
						affected++
					}
					return rows.Err()
				}
				tag, err := tx.Exec(ctx, c.sql, c.args...)
				affected = tag.RowsAffected()
				return err
			})
			if !c.allowed {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			if c.rows >= 0 {
				require.Equal(t, c.rows, affected)
			}
		})
	}

	// What must work end to end for the UI: B (an approver) approves A's
	// run; A reads the events written for it (what Realtime checks before
	// delivering) and cancels it.
	_, err := db.Pool.Exec(ctx, `INSERT INTO approvers (user_id, name) VALUES ($1, 'B')`, userB)
	require.NoError(t, err)
	require.NoError(t, asRole(ctx, db.Pool, "authenticated", userB, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT approve_run($1)`, runA).Scan(&ok); err != nil || !ok {
			return errOr(err, "approve_run returned false")
		}
		return nil
	}))
	require.NoError(t, asRole(ctx, db.Pool, "authenticated", userA, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM run_events WHERE run_id = $1`, runA).Scan(&n); err != nil || n == 0 {
			return errOr(err, "user cannot read the events of its own run")
		}
		_, err := tx.Exec(ctx, `UPDATE runs SET status = 'canceled' WHERE id = $1`, runA)
		return err
	}))
	var approvedBy, status string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT approved_by, status FROM runs WHERE id = $1`, runA).Scan(&approvedBy, &status))
	require.Equal(t, userB, approvedBy)
	require.Equal(t, "canceled", status)
	require.NoError(t, asRole(ctx, db.Pool, "authenticated", userB, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM run_events WHERE run_id = $1`, runA).Scan(&n); err != nil || n != 0 {
			return errOr(err, "user B reads user A's events")
		}
		return nil
	}))
}

type testErr string

func (e testErr) Error() string { return string(e) }

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return testErr(msg)
}

// TestRealtimePublication: the tables the UI watches are published.
func TestRealtimePublication(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	rows, err := db.Pool.Query(context.Background(),
		`SELECT tablename FROM pg_publication_tables WHERE pubname = 'supabase_realtime' AND schemaname = 'public' ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"artifacts", "run_events", "run_schedules", "run_steps", "runs", "sessions"}, tables)
}
