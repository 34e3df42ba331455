package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

// TestKill9Recovery: a daemon is SIGKILLed mid-run; another daemon's reaper
// settles its runs per the policy within stale-after + reaper period: the run
// lost in its action phase ends in error naming the phase, the run lost in
// preflight with attempts left is requeued and completed by the survivor.
func TestKill9Recovery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	inAction := template(t, db.Pool, "act", "action", "60s")
	inPreflight := template(t, db.Pool, "pre", "preflight", "2s")
	var lostInAction, lostInPreflight string
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, template_id, lane) VALUES ('dev', 'healthcheck', $1, 'A') RETURNING id`, inAction).Scan(&lostInAction))
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, template_id, lane, max_attempts) VALUES ('dev', 'healthcheck', $1, 'B', 2) RETURNING id`, inPreflight).Scan(&lostInPreflight))

	victim := startOpsd(t, db.URL, "victim")
	waitFor(t, 20*time.Second, "both runs in flight on the victim", func() bool {
		return count(t, db.Pool, `SELECT count(*) FROM runs WHERE claimed_by = 'victim'
			AND ((id = $1 AND phase = 'action') OR (id = $2 AND phase = 'preflight'))`, lostInAction, lostInPreflight) == 2
	})
	victim.signal(t, syscall.SIGKILL)
	victim.wait(t, 10*time.Second)
	killedAt := time.Now()

	startOpsd(t, db.URL, "survivor")
	waitFor(t, 20*time.Second, "the reaper to settle the lost action run", func() bool {
		return count(t, db.Pool, `SELECT count(*) FROM runs WHERE id = $1 AND status = 'error'`, lostInAction) == 1
	})
	// stale-after 2s + reaper period 0.5s, plus the survivor's start.
	require.Less(t, time.Since(killedAt), 10*time.Second)
	var msg string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT error_message FROM runs WHERE id = $1`, lostInAction).Scan(&msg))
	require.Contains(t, msg, "worker victim was lost in phase action")

	waitFor(t, 20*time.Second, "the requeued preflight run to succeed on the survivor", func() bool {
		return count(t, db.Pool, `SELECT count(*) FROM runs WHERE id = $1 AND status = 'success' AND claimed_by = 'survivor' AND attempt = 2`, lostInPreflight) == 1
	})
	// Events of both runs stay gapless across the two attempts.
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM (SELECT run_id FROM run_events GROUP BY run_id
		HAVING max(seq) <> count(*) OR min(seq) <> 1) x`))
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM run_events WHERE run_id = $1 AND source = 'System' AND message LIKE '%requeued%'`, lostInPreflight))
}

// TestSIGTERMWithRunsInFlight: SIGTERM with 50 runs in flight: the daemon
// exits 0 within the grace period; runs before their action phase are back in
// the queue, runs in it ended in error, and every event was flushed.
func TestSIGTERMWithRunsInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	pre := template(t, db.Pool, "pre", "preflight", "60s")
	act := template(t, db.Pool, "act", "action", "60s")
	_, err := db.Pool.Exec(ctx, `INSERT INTO runs (env, kind, template_id, lane)
		SELECT 'dev', 'healthcheck', CASE WHEN g % 2 = 0 THEN $1::uuid ELSE $2::uuid END, (ARRAY['A','B','C','D'])[1 + g % 4]
		FROM generate_series(1, 50) g`, pre, act)
	require.NoError(t, err)

	const grace = 2 * time.Second
	p := startOpsd(t, db.URL, "graceful", "--lane-concurrency", "16", "--shutdown-grace", grace.String())
	waitFor(t, 30*time.Second, "50 runs in their sleeping phase", func() bool {
		return count(t, db.Pool, `SELECT count(*) FROM runs r JOIN run_templates t ON t.id = r.template_id
			WHERE r.status = 'running' AND r.phase = CASE t.slug WHEN 'pre' THEN 'preflight' ELSE 'action' END`) == 50
	})
	began := time.Now()
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, grace+10*time.Second), "exit code")
	require.Less(t, time.Since(began), grace+5*time.Second)

	require.Equal(t, 25, count(t, db.Pool, `SELECT count(*) FROM runs r JOIN run_templates t ON t.id = r.template_id
		WHERE t.slug = 'pre' AND r.status = 'queued' AND r.claimed_by IS NULL AND r.attempt = 1 AND r.attempts_used = 0`),
		"released before action: the attempt is kept (it is the fencing token), not counted against max_attempts")
	require.Equal(t, 25, count(t, db.Pool, `SELECT count(*) FROM runs r JOIN run_templates t ON t.id = r.template_id
		WHERE t.slug = 'act' AND r.status = 'error' AND r.error_message = 'interrupted by shutdown during action'`))
	// Every run's events are gapless, and each ends with its final event.
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM (SELECT run_id FROM run_events GROUP BY run_id
		HAVING max(seq) <> count(*) OR min(seq) <> 1) x`))
	require.Equal(t, 50, count(t, db.Pool, `SELECT count(*) FROM run_events e WHERE e.seq = (SELECT max(seq) FROM run_events x WHERE x.run_id = e.run_id)
		AND (e.message LIKE 'worker graceful released%' OR e.message = 'interrupted by shutdown during action')`))
}
