package executor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// chatty is a runbook whose action floods the run with log lines and stores
// one oversized artifact.
type chatty struct {
	lines    int
	artifact int
}

func (c *chatty) Validate(context.Context, *executor.RunContext) error  { return nil }
func (c *chatty) Preflight(context.Context, *executor.RunContext) error { return nil }
func (c *chatty) Action(ctx context.Context, rc *executor.RunContext) error {
	for i := 0; i < c.lines; i++ {
		if err := rc.Log("Vercel", fmt.Sprintf("build line %06d", i)); err != nil {
			return err
		}
	}
	if c.artifact > 0 {
		return rc.Artifact(ctx, executor.ArtifactFile, "build.log", strings.Repeat("x", c.artifact))
	}
	return nil
}
func (c *chatty) Verify(context.Context, *executor.RunContext) error    { return nil }
func (c *chatty) Summarize(context.Context, *executor.RunContext) error { return nil }

// TestChattyOutputCoalesced: 20,000 log lines as fast as they come become a
// few multi-line rows (about 10 a second), with every line kept in order.
func TestChattyOutputCoalesced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const lines = 20000
	cfg := fastConfig("")
	cfg.ArtifactMaxBytes = 4096
	e.startDaemon(cfg, executor.ResolverFunc(func(ctx context.Context, r *executor.Run) (executor.Runbook, error) {
		return &chatty{lines: lines, artifact: 10000}, nil
	}))
	ctx := context.Background()
	var id string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind) VALUES ('dev', 'deploy') RETURNING id`).Scan(&id))
	status, msg := waitStatus(t, e.db.Pool, id, 30*time.Second, "success", "error")
	require.Equal(t, "success", status, msg)

	rows, err := e.db.Pool.Query(ctx, `SELECT message FROM run_events WHERE run_id = $1 AND source = 'Vercel' ORDER BY seq`, id)
	require.NoError(t, err)
	var got []string
	nrows := 0
	for rows.Next() {
		var m string
		require.NoError(t, rows.Scan(&m))
		got = append(got, strings.Split(m, "\n")...)
		nrows++
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, lines, "no line lost")
	for i, l := range got {
		require.Equal(t, fmt.Sprintf("build line %06d", i), l)
	}
	var span time.Duration
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT max(ts) - min(ts) FROM run_events WHERE run_id = $1 AND source = 'Vercel'`, id).Scan(&span))
	limit := int(span.Seconds()*10) + 2 + lines/(64<<10/18) // rate cap, plus rows cut at the 64 KiB row size
	require.LessOrEqual(t, nrows, limit, "%d rows over %s", nrows, span)

	var value string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT value FROM artifacts WHERE run_id = $1`, id).Scan(&value))
	require.Contains(t, value, "[truncated: 6064 bytes omitted", value[len(value)-120:])
	require.LessOrEqual(t, len(value), 4096, "the row stays under the cap, marker included")
	var warned int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM run_events WHERE run_id = $1 AND level = 'warn' AND message LIKE 'artifact "build.log"%truncated%'`, id).Scan(&warned))
	require.Equal(t, 1, warned)
}
