package executor_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// TestManyDaemons: 4 daemons x 4 lanes x 1,000 template runs over 50
// sessions: all succeed, no run executes twice (one start event each), and
// each session's lane runs one run at a time, in priority order.
func TestManyDaemons(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tpl := e.template("noop", noopTemplate)
	ctx := context.Background()
	_, err := e.db.Pool.Exec(ctx, `INSERT INTO sessions (id) SELECT gen_random_uuid() FROM generate_series(1, 50)`)
	require.NoError(t, err)
	_, err = e.db.Pool.Exec(ctx, `
		INSERT INTO runs (env, kind, template_id, session_id, lane, priority, created_at)
		SELECT 'dev', 'healthcheck', $1, s.id, l.lane, (random() * 2)::int * 10, clock_timestamp()
		  FROM sessions s, (VALUES ('A'), ('B'), ('C'), ('D')) l (lane), generate_series(1, 5) g`, tpl)
	require.NoError(t, err)
	for i := 0; i < 4; i++ {
		e.startDaemon(fastConfig(fmt.Sprintf("d%d", i)), nil)
	}
	waitFor(t, 3*time.Minute, "all 1,000 runs to finish", func() bool {
		var left int
		require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM runs WHERE finished_at IS NULL`).Scan(&left))
		return left == 0
	})

	var total, succeeded int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'success') FROM runs`).Scan(&total, &succeeded))
	require.Equal(t, 1000, total)
	require.Equal(t, 1000, succeeded)

	var badStarts int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT r.id FROM runs r LEFT JOIN run_events e ON e.run_id = r.id AND e.message LIKE 'claimed by %'
		GROUP BY r.id HAVING count(e.id) <> 1) x`).Scan(&badStarts))
	require.Zero(t, badStarts, "every run has exactly one start event")

	// Lane exclusivity: within a (session, lane), each run starts after the
	// previous one finished, in priority then created_at order.
	rows, err := e.db.Pool.Query(ctx, `SELECT session_id, lane, started_at, finished_at, priority, created_at
		FROM runs ORDER BY session_id, lane, started_at`)
	require.NoError(t, err)
	type row struct {
		session, lane     string
		started, finished time.Time
		priority          int
		created           time.Time
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.session, &x.lane, &x.started, &x.finished, &x.priority, &x.created)
		return x, err
	})
	require.NoError(t, err)
	for i := 1; i < len(all); i++ {
		prev, cur := all[i-1], all[i]
		if prev.session != cur.session || prev.lane != cur.lane {
			continue
		}
		require.False(t, cur.started.Before(prev.finished), "session %s lane %s: a run started before the previous finished", cur.session, cur.lane)
		order := prev.priority < cur.priority || (prev.priority == cur.priority && !prev.created.After(cur.created))
		require.True(t, order, "session %s lane %s: runs started out of priority/created_at order", cur.session, cur.lane)
	}

	// Events have seq 1..n per run and the last one is the final event.
	var gaps int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT run_id FROM run_events GROUP BY run_id HAVING max(seq) <> count(*) OR min(seq) <> 1) x`).Scan(&gaps))
	require.Zero(t, gaps)
	var finals int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM run_events e
		WHERE e.seq = (SELECT max(seq) FROM run_events x WHERE x.run_id = e.run_id) AND e.level = 'success' AND e.message LIKE 'run succeeded%'`).Scan(&finals))
	require.Equal(t, 1000, finals)
}

// TestCancelDuringSleep: a run canceled during a 60 s sleep step ends
// canceled within heartbeat interval + 1 s, with a final warn event.
func TestCancelDuringSleep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tpl := e.template("nap", sleepTemplate("action", "60s"))
	cfg := fastConfig("")
	e.startDaemon(cfg, nil)
	id := e.submit(tpl, nil, "A", 100, "")
	ctx := context.Background()
	waitFor(t, 10*time.Second, "the run to reach its action phase", func() bool {
		var phase *string
		require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT phase FROM runs WHERE id = $1`, id).Scan(&phase))
		return phase != nil && *phase == "action"
	})
	ok, err := e.store.CancelRun(ctx, id)
	require.NoError(t, err)
	require.True(t, ok)
	status, _ := waitStatus(t, e.db.Pool, id, 10*time.Second, "canceled")
	require.Equal(t, "canceled", status)
	var took time.Duration
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT finished_at - canceled_at FROM runs WHERE id = $1`, id).Scan(&took))
	require.Less(t, took, cfg.HeartbeatInterval+time.Second, "cancel honoured within heartbeat interval + 1s")
	var level, msg string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT level, message FROM run_events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1`, id).Scan(&level, &msg))
	require.Equal(t, "warn", level)
	require.Contains(t, msg, "canceled")
	var stepStatus string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT status::text FROM run_steps WHERE run_id = $1 AND step_id = 'nap'`, id).Scan(&stepStatus))
	require.Equal(t, "canceled", stepStatus)
}

// TestTimeouts: a run timeout and a validation failure end the run in error
// with a message naming the phase.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDaemon(fastConfig(""), nil)
	ctx := context.Background()

	slow := e.template("slow", sleepTemplate("action", "30s"))
	var id string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, template_id, timeout_seconds)
		VALUES ('dev', 'healthcheck', $1, 1) RETURNING id`, slow).Scan(&id))
	status, msg := waitStatus(t, e.db.Pool, id, 15*time.Second, "error")
	require.Equal(t, "error", status)
	require.Regexp(t, `^timed out in phase (validate|preflight|action) after 1(\.\d+)?s$`, msg)

	bad := e.template("needs-input", `version: 1
inputs:
  - {key: project, label: Vercel project, type: string, required: true}
steps:
  - {id: s, kind: system, action: noop, args: {p: "{{ inputs.project }}"}}
`)
	id = e.submit(bad, nil, "B", 100, "")
	status, msg = waitStatus(t, e.db.Pool, id, 15*time.Second, "error")
	require.Equal(t, "error", status)
	require.Contains(t, msg, "validate failed")
	require.Contains(t, msg, `input "project" (Vercel project) is required`)
}

// TestWebhookWake: /v1/wake refuses a missing or wrong secret and claims
// nothing; the right secret claims at once, without waiting for a poll.
func TestWebhookWake(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tpl := e.template("noop", noopTemplate)
	cfg := fastConfig("")
	cfg.PollInterval, cfg.PollMaxInterval = time.Hour, time.Hour
	store := &noPush{Store: e.store}
	d := startDaemonOn(t, store, cfg, nil)
	srv := newHTTPTestServer(t, d.Handler(executor.HTTPConfig{WebhookSecret: "s3cret-wake"}))

	// Every lane polls once at start; after that this run waits for a wake.
	waitFor(t, 5*time.Second, "the first poll of each lane", func() bool { return store.claims.Load() >= 4 })
	id := e.submit(tpl, nil, "C", 100, "")
	for _, auth := range []string{"", "Bearer wrong", "s3cret-wake", "Bearer s3cret-wak"} {
		code := postWake(t, srv, auth, `{"run_id":"`+id+`"}`)
		require.Equal(t, 401, code, "auth %q", auth)
	}
	status, _ := runRow(t, e.db.Pool, id)
	require.Equal(t, "queued", status, "no claim without the right secret")

	body := fmt.Sprintf(`{"type":"INSERT","table":"runs","schema":"public","record":{"id":%q,"lane":"C"},"old_record":null}`, id)
	require.Equal(t, 202, postWake(t, srv, "Bearer s3cret-wake", body))
	status, _ = waitStatus(t, e.db.Pool, id, 5*time.Second, "success")
	require.Equal(t, "success", status)
}

// noPush hides a store's push wake-ups, so only polls and webhooks wake,
// and counts claims.
type noPush struct {
	executor.Store
	claims atomic.Int64
}

func (*noPush) Wakeups(context.Context) <-chan string { return nil }

func (n *noPush) ClaimRuns(ctx context.Context, req executor.ClaimRequest) ([]*executor.Run, error) {
	runs, err := n.Store.ClaimRuns(ctx, req)
	n.claims.Add(1) // counted once the claim is done, so a test can wait for it
	return runs, err
}
