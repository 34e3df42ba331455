package executor_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// oneArtifact is a runbook whose action stores one artifact.
type oneArtifact struct{ value string }

func (o *oneArtifact) Validate(context.Context, *executor.RunContext) error  { return nil }
func (o *oneArtifact) Preflight(context.Context, *executor.RunContext) error { return nil }
func (o *oneArtifact) Action(ctx context.Context, rc *executor.RunContext) error {
	return rc.Artifact(ctx, executor.ArtifactFile, "build.log", o.value)
}
func (o *oneArtifact) Verify(context.Context, *executor.RunContext) error    { return nil }
func (o *oneArtifact) Summarize(context.Context, *executor.RunContext) error { return nil }

// bigStore records what would go to Supabase Storage.
type bigStore struct {
	mu   sync.Mutex
	got  []executor.Artifact
	fail error
}

func (b *bigStore) PutLargeArtifact(_ context.Context, a executor.Artifact) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return "", b.fail
	}
	b.got = append(b.got, a)
	return "https://xyz.supabase.co/storage/v1/object/sign/artifacts/runs/x/build.log.txt?token=t", nil
}

type artifactRow struct{ kind, title, value string }

func runOneArtifact(t *testing.T, value string, maxBytes int, big *bigStore) (rows []artifactRow, warns []string) {
	t.Helper()
	e := newEnv(t)
	cfg := fastConfig("")
	cfg.ArtifactMaxBytes = maxBytes
	var store executor.Store = e.store
	if big != nil {
		store = executor.WithLargeArtifacts(e.store, big)
	}
	startDaemonOn(t, store, cfg, executor.ResolverFunc(func(context.Context, *executor.Run) (executor.Runbook, error) {
		return &oneArtifact{value: value}, nil
	}))
	ctx := context.Background()
	var id string
	require.NoError(t, e.db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind) VALUES ('dev', 'deploy') RETURNING id`).Scan(&id))
	status, msg := waitStatus(t, e.db.Pool, id, 30*time.Second, "success", "error")
	require.Equal(t, "success", status, msg)
	r, err := e.db.Pool.Query(ctx, `SELECT kind, title, value FROM artifacts WHERE run_id = $1 ORDER BY id`, id)
	require.NoError(t, err)
	for r.Next() {
		var a artifactRow
		require.NoError(t, r.Scan(&a.kind, &a.title, &a.value))
		rows = append(rows, a)
	}
	require.NoError(t, r.Err())
	w, err := e.db.Pool.Query(ctx, `SELECT message FROM run_events WHERE run_id = $1 AND level = 'warn' ORDER BY seq`, id)
	require.NoError(t, err)
	for w.Next() {
		var m string
		require.NoError(t, w.Scan(&m))
		warns = append(warns, m)
	}
	require.NoError(t, w.Err())
	return rows, warns
}

func escaped(s string) int {
	b, _ := json.Marshal(s)
	return len(b) - 2
}

// The cap counts the value as JSON escapes it: quotes and newlines take two
// bytes, so a value under the byte cap may be over the row cap.
func TestArtifactCapCountsEscapedBytes(t *testing.T) {
	t.Parallel()
	value := strings.Repeat("\"quoted\"\n", 400) // 3,600 bytes, 4,800 escaped
	rows, warns := runOneArtifact(t, value, 4096, nil)
	require.Len(t, rows, 1)
	require.LessOrEqual(t, escaped(rows[0].value), 4096)
	require.Contains(t, rows[0].value, "…[truncated: ")
	require.Contains(t, rows[0].value, "set artifact_storage_bucket")
	require.Len(t, warns, 1)
	require.Contains(t, warns[0], "over the 4096-byte row cap (artifact_max_bytes): truncated")
}

// Whatever the configured cap, a row stays at MaxArtifactRowBytes escaped,
// well under Realtime's 1 MiB per change.
func TestArtifactRowCeiling(t *testing.T) {
	t.Parallel()
	rows, _ := runOneArtifact(t, strings.Repeat("x", 1<<20), 1<<20, nil)
	require.Len(t, rows, 1)
	require.LessOrEqual(t, escaped(rows[0].value), executor.MaxArtifactRowBytes)
	require.Greater(t, len(rows[0].value), executor.MaxArtifactRowBytes-1024, "cut near the ceiling, not far below it")
}

// With Storage configured the whole content goes there and the row is a link.
func TestLargeArtifactGoesToStorage(t *testing.T) {
	t.Parallel()
	big := &bigStore{}
	value := strings.Repeat("line of build output\n", 1000)
	rows, warns := runOneArtifact(t, value, 4096, big)
	require.Len(t, big.got, 1)
	require.Equal(t, value, big.got[0].Value, "stored whole")
	require.Len(t, rows, 1)
	require.Equal(t, "link", rows[0].kind)
	require.Equal(t, "build.log (full content in Storage)", rows[0].title)
	require.True(t, strings.HasPrefix(rows[0].value, "https://xyz.supabase.co/storage/v1/object/sign/"))
	require.Len(t, warns, 1)
	require.Contains(t, warns[0], "stored in Supabase Storage and linked")
}

// A failed upload falls back to the truncated row, and says so.
func TestLargeArtifactStorageFailure(t *testing.T) {
	t.Parallel()
	big := &bigStore{fail: errors.New("storage: upload: 400: Bucket not found")}
	rows, warns := runOneArtifact(t, strings.Repeat("y", 10000), 4096, big)
	require.Len(t, rows, 1)
	require.Equal(t, "file", rows[0].kind)
	require.Contains(t, rows[0].value, "…[truncated: ")
	require.Len(t, warns, 2)
	require.Contains(t, warns[0], "upload to Supabase Storage failed")
	require.Contains(t, warns[0], "Bucket not found")
	require.Contains(t, warns[1], "truncated")
}

// A value within the cap is stored as it is, without a warning.
func TestSmallArtifactUntouched(t *testing.T) {
	t.Parallel()
	big := &bigStore{}
	rows, warns := runOneArtifact(t, "ok\n", 4096, big)
	require.Equal(t, []artifactRow{{"file", "build.log", "ok\n"}}, rows)
	require.Empty(t, warns)
	require.Empty(t, big.got)
}
