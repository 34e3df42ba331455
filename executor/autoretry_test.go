package executor_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// flakyRunbook fails in failIn on every attempt below okFrom (0: always).
type flakyRunbook struct {
	run    *executor.Run
	failIn string
	okFrom int
}

func (f flakyRunbook) fail(phase string) error {
	if phase == f.failIn && (f.okFrom == 0 || f.run.Attempt < f.okFrom) {
		return errors.New("upstream said 503")
	}
	return nil
}
func (f flakyRunbook) Validate(context.Context, *executor.RunContext) error {
	return f.fail("validate")
}
func (f flakyRunbook) Preflight(context.Context, *executor.RunContext) error {
	return f.fail("preflight")
}
func (f flakyRunbook) Action(context.Context, *executor.RunContext) error    { return f.fail("action") }
func (f flakyRunbook) Verify(context.Context, *executor.RunContext) error    { return f.fail("verify") }
func (f flakyRunbook) Summarize(context.Context, *executor.RunContext) error { return nil }

// TestAutomaticRetries: with retries configured for a kind, an attempt that
// fails in preflight is queued again after its backoff (not before) and
// the next attempt runs; one that fails in its action phase is not retried,
// and an event says why; the last attempt is not retried either.
func TestAutomaticRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	resolver := executor.ResolverFunc(func(_ context.Context, run *executor.Run) (executor.Runbook, error) {
		var in struct {
			FailIn string `json:"fail_in"`
			OkFrom int    `json:"ok_from"`
		}
		_ = json.Unmarshal(run.Input, &in)
		return flakyRunbook{run: run, failIn: in.FailIn, okFrom: in.OkFrom}, nil
	})
	cfg := fastConfig("")
	cfg.Retries = map[string]executor.RetryPolicy{"healthcheck": {MaxAttempts: 3, Backoff: 2 * time.Second}}
	e.startDaemon(cfg, resolver)

	submit := func(input string) string {
		var id string
		require.NoError(t, e.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, input) VALUES ('dev', 'healthcheck', $1) RETURNING id`, input).Scan(&id))
		return id
	}
	flaky := submit(`{"fail_in":"preflight","ok_from":2}`)
	always := submit(`{"fail_in":"preflight"}`)
	inAction := submit(`{"fail_in":"action"}`)

	status, _ := waitStatus(t, e.db.Pool, flaky, 30*time.Second, "success", "error")
	require.Equal(t, "success", status)
	status, msg := waitStatus(t, e.db.Pool, always, 60*time.Second, "success", "error")
	require.Equal(t, "error", status)
	require.Contains(t, msg, "preflight failed")
	status, _ = waitStatus(t, e.db.Pool, inAction, 30*time.Second, "success", "error")
	require.Equal(t, "error", status)

	attempts := func(id string) int {
		var n int
		require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT attempt FROM runs WHERE id = $1`, id).Scan(&n))
		return n
	}
	require.Equal(t, 2, attempts(flaky))
	require.Equal(t, 3, attempts(always))
	require.Equal(t, 1, attempts(inAction))

	messages := func(id string) []string {
		rows, err := e.db.Pool.Query(ctx, `SELECT message FROM run_events WHERE run_id = $1 AND source = 'System' ORDER BY seq`, id)
		require.NoError(t, err)
		var out []string
		for rows.Next() {
			var m string
			require.NoError(t, rows.Scan(&m))
			out = append(out, m)
		}
		return out
	}
	require.Contains(t, messages(flaky), "attempt 1 of 3 failed in phase preflight before any action: preflight failed: upstream said 503; retrying in 2s")
	require.Contains(t, messages(always), "attempt 2 of 3 failed in phase preflight before any action: preflight failed: upstream said 503; retrying in 4s")
	require.Contains(t, messages(always), "not retried: attempt 3 of 3 was the last")
	require.Contains(t, messages(inAction),
		"not retried: attempt 1 failed in phase action; only attempts that fail before the action phase are retried, so an action's side effects are never repeated")

	// The backoff held: attempt 2 started at least 2s after attempt 1 failed.
	var gap time.Duration
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT (SELECT min(ts) FROM run_events WHERE run_id = $1 AND message LIKE 'claimed by % (attempt 2 of 3)')
		- (SELECT min(ts) FROM run_events WHERE run_id = $1 AND message LIKE 'attempt 1 of 3 failed%')`, flaky).Scan(&gap))
	require.GreaterOrEqual(t, gap, 2*time.Second)
}
