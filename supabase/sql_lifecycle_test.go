package supabase_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

func heartbeat(t *testing.T, db *pgtest.DB, worker, id string, attempt int) (state string, approved bool) {
	t.Helper()
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT state, approved FROM heartbeat_runs($1, ARRAY[$2::uuid], ARRAY[$3::int])`, worker, id, attempt).
		Scan(&state, &approved))
	return state, approved
}

func boolQuery(t *testing.T, db *pgtest.DB, sql string, args ...any) bool {
	t.Helper()
	var b bool
	require.NoError(t, db.Pool.QueryRow(context.Background(), sql, args...).Scan(&b))
	return b
}

func makeStale(t *testing.T, db *pgtest.DB, id string) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), `UPDATE runs SET heartbeat_at = now() - interval '1 hour',
		lease_expires_at = now() - interval '1 second' WHERE id = $1`, id)
	require.NoError(t, err)
}

// TestFencing: after the reaper requeues a run, the old owner's heartbeat,
// phase change and finish change nothing and say so.
func TestFencing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	id := insertRun(t, db.Pool, nil, "A", 100)
	_, err := db.Pool.Exec(ctx, `UPDATE runs SET max_attempts = 2 WHERE id = $1`, id)
	require.NoError(t, err)
	got, err := claim(ctx, db.Pool, "old", "A", 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.True(t, boolQuery(t, db, `SELECT set_run_phase($1, 'old', 1, 'preflight')`, id))

	makeStale(t, db, id)
	var action string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT action FROM reap_stale_runs() WHERE run_id = $1`, id).Scan(&action))
	require.Equal(t, "requeued", action)

	state, _ := heartbeat(t, db, "old", id, 1)
	require.Equal(t, "lost", state)
	require.False(t, boolQuery(t, db, `SELECT set_run_phase($1, 'old', 1, 'action')`, id))
	require.False(t, boolQuery(t, db, `SELECT finish_run($1, 'old', 1, 'success')`, id))
	status, _ := runStatus(t, db.Pool, id)
	require.Equal(t, "queued", status)

	got, err = claim(ctx, db.Pool, "new", "A", 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, 2, got[0].Attempt)
	require.Equal(t, 2, got[0].NextSeq, "the reaper's event took seq 1")
	// Same worker name but the old attempt is still fenced off.
	require.False(t, boolQuery(t, db, `SELECT finish_run($1, 'new', 1, 'error')`, id))
	require.True(t, boolQuery(t, db, `SELECT finish_run($1, 'new', 2, 'success')`, id))
	status, finished := runStatus(t, db.Pool, id)
	require.Equal(t, "success", status)
	require.True(t, finished)
	require.False(t, boolQuery(t, db, `SELECT finish_run($1, 'new', 2, 'error')`, id), "a finished run is finished once")
}

// TestReaperPolicy: requeue before the action phase with attempts left, error
// otherwise (naming the phase), finalize canceled runs, leave live runs alone;
// each action writes one System event, even with reapers racing.
func TestReaperPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	cases := []struct {
		name        string
		phase       string
		maxAttempts int
		cancel      bool
		fresh       bool
		wantAction  string
		wantStatus  string
		wantMessage string
	}{
		{name: "validate with attempts left", phase: "validate", maxAttempts: 3, wantAction: "requeued", wantStatus: "queued"},
		{name: "approval wait with attempts left", phase: "approval", maxAttempts: 2, wantAction: "requeued", wantStatus: "queued"},
		{name: "preflight without attempts left", phase: "preflight", maxAttempts: 1, wantAction: "errored", wantStatus: "error", wantMessage: "lost in phase preflight"},
		{name: "action", phase: "action", maxAttempts: 5, wantAction: "errored", wantStatus: "error", wantMessage: "lost in phase action"},
		{name: "verify", phase: "verify", maxAttempts: 5, wantAction: "errored", wantStatus: "error", wantMessage: "lost in phase verify"},
		{name: "canceled", phase: "action", maxAttempts: 1, cancel: true, wantAction: "finalized", wantStatus: "canceled"},
		{name: "alive", phase: "action", maxAttempts: 1, fresh: true},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		s := insertSession(t, db.Pool) // one session each, so every run is claimable at once
		ids[i] = insertRun(t, db.Pool, &s, "A", i)
		_, err := db.Pool.Exec(ctx, `UPDATE runs SET max_attempts = $2 WHERE id = $1`, ids[i], tc.maxAttempts)
		require.NoError(t, err)
	}
	got, err := claim(ctx, db.Pool, "dead", "A", len(cases))
	require.NoError(t, err)
	require.Len(t, got, len(cases))
	for i, tc := range cases {
		require.True(t, boolQuery(t, db, `SELECT set_run_phase($1, 'dead', 1, $2)`, ids[i], tc.phase))
		if tc.cancel {
			require.True(t, boolQuery(t, db, `SELECT cancel_run($1)`, ids[i]))
		}
		if !tc.fresh {
			makeStale(t, db, ids[i])
		}
	}

	// Three reapers at once: each stale run is acted on exactly once.
	var mu sync.Mutex
	actions := map[string][]string{}
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows, err := db.Pool.Query(ctx, `SELECT run_id, action FROM reap_stale_runs()`)
			if !assertNoError(t, err) {
				return
			}
			defer rows.Close()
			for rows.Next() {
				var id, action string
				if !assertNoError(t, rows.Scan(&id, &action)) {
					return
				}
				mu.Lock()
				actions[id] = append(actions[id], action)
				mu.Unlock()
			}
			assertNoError(t, rows.Err())
		}()
	}
	wg.Wait()

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var status string
			var msg *string
			var events int
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status, error_message,
				(SELECT count(*) FROM run_events e WHERE e.run_id = r.id AND e.source = 'System')
				FROM runs r WHERE id = $1`, ids[i]).Scan(&status, &msg, &events))
			if tc.fresh {
				require.Empty(t, actions[ids[i]])
				require.Equal(t, "running", status)
				require.Zero(t, events)
				return
			}
			require.Equal(t, []string{tc.wantAction}, actions[ids[i]])
			require.Equal(t, tc.wantStatus, status)
			require.Equal(t, 1, events, "one System event explains what the reaper did")
			if tc.wantMessage != "" {
				require.NotNil(t, msg)
				require.Contains(t, *msg, tc.wantMessage)
				require.Contains(t, *msg, "worker dead")
			}
		})
	}
}

func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

// TestCancelEveryState covers cancel_run on queued, running and terminal runs.
func TestCancelEveryState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)

	queued := insertRun(t, db.Pool, nil, "A", 100)
	require.True(t, boolQuery(t, db, `SELECT cancel_run($1)`, queued))
	status, finished := runStatus(t, db.Pool, queued)
	require.Equal(t, "canceled", status)
	require.True(t, finished, "a canceled queued run is finished at once")

	running := insertRun(t, db.Pool, nil, "B", 100)
	_, err := claim(ctx, db.Pool, "w", "B", 1)
	require.NoError(t, err)
	require.True(t, boolQuery(t, db, `SELECT cancel_run($1)`, running))
	status, finished = runStatus(t, db.Pool, running)
	require.Equal(t, "canceled", status)
	require.False(t, finished, "the owner finishes a canceled running run")
	state, _ := heartbeat(t, db, "w", running, 1)
	require.Equal(t, "canceled", state)
	require.True(t, boolQuery(t, db, `SELECT finish_run($1, 'w', 1, 'success')`, running))
	status, finished = runStatus(t, db.Pool, running)
	require.Equal(t, "canceled", status, "a cancel wins over a late success")
	require.True(t, finished)

	require.False(t, boolQuery(t, db, `SELECT cancel_run($1)`, running), "terminal runs are untouched")
	require.False(t, boolQuery(t, db, `SELECT cancel_run('00000000-0000-0000-0000-000000000000')`))

	// The frontend's other way to cancel: a plain UPDATE.
	viaUpdate := insertRun(t, db.Pool, nil, "C", 100)
	_, err = db.Pool.Exec(ctx, `UPDATE runs SET status = 'canceled' WHERE id = $1`, viaUpdate)
	require.NoError(t, err)
	status, finished = runStatus(t, db.Pool, viaUpdate)
	require.Equal(t, "canceled", status)
	require.True(t, finished)
}

// TestTerminalImmutable: no writer, not even the service role or a superuser,
// changes a terminal status.
func TestTerminalImmutable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	id := insertRun(t, db.Pool, nil, "A", 100)
	_, err := claim(ctx, db.Pool, "w", "A", 1)
	require.NoError(t, err)
	require.True(t, boolQuery(t, db, `SELECT finish_run($1, 'w', 1, 'error', 'boom')`, id))
	for _, to := range []string{"queued", "running", "success", "canceled"} {
		_, err := db.Pool.Exec(ctx, `UPDATE runs SET status = $2 WHERE id = $1`, id, to)
		require.ErrorContains(t, err, "terminal status never changes", "error -> %s", to)
		err = asRole(ctx, db.Pool, "service_role", "", func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE runs SET status = $2 WHERE id = $1`, id, to)
			return err
		})
		require.ErrorContains(t, err, "terminal status never changes", "service_role: error -> %s", to)
	}
	require.False(t, boolQuery(t, db, `SELECT complete_run($1, 'succeeded')`, id))
	status, _ := runStatus(t, db.Pool, id)
	require.Equal(t, "error", status)
}

// TestEventBatchReplay: a replayed batch with the same (run_id, seq) inserts nothing new.
func TestEventBatchReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	id := insertRun(t, db.Pool, nil, "A", 100)
	_, err := claim(ctx, db.Pool, "w", "A", 1)
	require.NoError(t, err)
	batch := `SELECT count(*) FROM append_run_rows('w', (SELECT jsonb_agg(jsonb_build_object('run_id', $1::uuid, 'attempt', 1,
		'seq', g, 'level', 'info', 'source', 'System', 'message', 'line ' || g)) FROM generate_series(1, 50) g))`
	for i := 0; i < 3; i++ {
		var refused int
		require.NoError(t, db.Pool.QueryRow(ctx, batch, id).Scan(&refused))
		require.Zero(t, refused)
	}
	var n, distinct int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT seq) FROM run_events WHERE run_id = $1`, id).Scan(&n, &distinct))
	require.Equal(t, 50, n)
	require.Equal(t, 50, distinct)
}

// TestReleaseGivesAttemptBack: a release does not use up one of
// max_attempts, but the attempt number (the fencing token) stays.
func TestReleaseGivesAttemptBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	id := insertRun(t, db.Pool, nil, "A", 100)
	_, err := claim(ctx, db.Pool, "w", "A", 1)
	require.NoError(t, err)
	require.True(t, boolQuery(t, db, `SELECT release_run($1, 'w', 1, 'shutdown')`, id))
	var status string
	var attempt, used int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status, attempt, attempts_used FROM runs WHERE id = $1`, id).Scan(&status, &attempt, &used))
	require.Equal(t, "queued", status)
	require.Equal(t, 1, attempt)
	require.Zero(t, used)
	require.False(t, boolQuery(t, db, `SELECT release_run($1, 'w', 1, 'again')`, id))
}
