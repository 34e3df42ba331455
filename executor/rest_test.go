package executor_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
	"github.com/opscontrolroom/opsd/supabase/reststore"
)

// TestRESTOutageMidRun: the PostgREST server answers 503 to everything for
// 5 s while a run is in its action phase; the run still completes, and its
// events are complete: seq 1..n, no gaps, no duplicates.
func TestRESTOutageMidRun(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	srv := postgresttest.New(t, db.URL, "test-jwt-secret-with-at-least-32-bytes!")
	store, err := reststore.New(reststore.Config{URL: srv.URL, ServiceRoleKey: srv.ServiceKey()})
	require.NoError(t, err)
	t.Cleanup(store.Close)
	e := &env{t: t, db: db, store: store}
	tpl := e.template("outage", `version: 1
steps:
  - {id: before, kind: system, action: noop, phase: preflight}
  - {id: nap, kind: system, action: sleep, args: {duration: "2s"}}
  - {id: chatter, kind: system, action: noop, args: {message: "still here"}}
  - {id: after, kind: system, action: noop, phase: verify}
`)
	cfg := fastConfig("")
	cfg.StaleAfter = 20 * time.Second // the outage is shorter than a lease
	e.startDaemon(cfg, nil)
	id := e.submit(tpl, nil, "A", 100, "")
	ctx := context.Background()
	waitFor(t, 15*time.Second, "the run to reach its action phase", func() bool {
		var phase *string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT phase FROM runs WHERE id = $1`, id).Scan(&phase))
		return phase != nil && *phase == "action"
	})
	srv.Outage(5 * time.Second)
	status, msg := waitStatus(t, db.Pool, id, 40*time.Second, "success", "error")
	require.Equal(t, "success", status, msg)
	require.Positive(t, srv.Stats().OutageRejected, "the outage was hit")

	var n, maxSeq, distinct int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*), max(seq), count(DISTINCT seq) FROM run_events WHERE run_id = $1`, id).
		Scan(&n, &maxSeq, &distinct))
	require.Equal(t, n, maxSeq, "no gaps")
	require.Equal(t, n, distinct, "no duplicates")
	var last string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT message FROM run_events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1`, id).Scan(&last))
	require.Contains(t, last, "run succeeded")
	var chatter int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM run_events WHERE run_id = $1 AND message = 'still here'`, id).Scan(&chatter))
	require.Equal(t, 1, chatter)
}
