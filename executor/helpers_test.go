package executor_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/runbooks"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testStore is a backend as the tests use it: the daemon's store, read back
// and fed as an operator.
type testStore interface {
	executor.Store
	executor.OperatorStore
}

// env is one test's database, store and helpers.
type env struct {
	t     *testing.T
	db    *pgtest.DB
	store testStore
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := pgtest.NewDB(t)
	s, err := pgstore.New(context.Background(), pgstore.Config{URL: db.URL})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return &env{t: t, db: db, store: s}
}

var daemonSeq atomic.Int64

// fastConfig is a daemon configuration with short periods for tests.
func fastConfig(worker string) executor.Config {
	if worker == "" {
		worker = fmt.Sprintf("test-%d", daemonSeq.Add(1))
	}
	return executor.Config{
		WorkerID: worker, LaneConcurrency: 8,
		HeartbeatInterval: 300 * time.Millisecond, StaleAfter: 2 * time.Second, ReaperPeriod: 500 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, PollMaxInterval: 200 * time.Millisecond, ShutdownGrace: 5 * time.Second,
	}
}

// startDaemon starts a daemon on store with the template resolver and stops
// it at cleanup.
func (e *env) startDaemon(cfg executor.Config, resolver executor.Resolver) *executor.Daemon {
	e.t.Helper()
	return startDaemonOn(e.t, e.store, cfg, resolver)
}

func startDaemonOn(t *testing.T, store executor.Store, cfg executor.Config, resolver executor.Resolver) *executor.Daemon {
	t.Helper()
	return startDaemonLogged(t, store, cfg, resolver, zaptest.NewLogger(t))
}

// startDaemonLogged is startDaemonOn with the daemon's logger, for tests
// that look at what the daemon logs.
func startDaemonLogged(t *testing.T, store executor.Store, cfg executor.Config, resolver executor.Resolver, log *zap.Logger) *executor.Daemon {
	t.Helper()
	if resolver == nil {
		resolver = &runbooks.Resolver{Store: store}
	}
	d, err := executor.New(cfg, store, resolver, log, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		require.NoError(t, d.Stop(sctx))
		cancel()
	})
	return d
}

func (e *env) template(slug, yaml string) string {
	e.t.Helper()
	var id string
	require.NoError(e.t, e.db.Pool.QueryRow(context.Background(),
		`INSERT INTO run_templates (slug, title, template_yaml) VALUES ($1, $1, $2) RETURNING id`, slug, yaml).Scan(&id))
	return id
}

// submit inserts a template run the way the frontend inserts runs.
func (e *env) submit(templateID string, session *string, lane string, priority int, input string) string {
	e.t.Helper()
	var id string
	if input == "" {
		input = "{}"
	}
	require.NoError(e.t, e.db.Pool.QueryRow(context.Background(),
		`INSERT INTO runs (env, kind, template_id, session_id, lane, priority, input)
		 VALUES ('dev', 'healthcheck', $1, $2, $3, $4, $5) RETURNING id`,
		templateID, session, lane, priority, input).Scan(&id))
	return id
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runRow(t *testing.T, pool *pgxpool.Pool, id string) (status, msg string) {
	t.Helper()
	var m *string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT status, error_message FROM runs WHERE id = $1`, id).Scan(&status, &m))
	if m != nil {
		msg = *m
	}
	return status, msg
}

func waitStatus(t *testing.T, pool *pgxpool.Pool, id string, timeout time.Duration, want ...string) (string, string) {
	t.Helper()
	var status, msg string
	waitFor(t, timeout, fmt.Sprintf("run %s to reach %v", id, want), func() bool {
		status, msg = runRow(t, pool, id)
		for _, w := range want {
			if status == w {
				var fin bool
				_ = pool.QueryRow(context.Background(), `SELECT finished_at IS NOT NULL OR status = 'queued' FROM runs WHERE id = $1`, id).Scan(&fin)
				return fin
			}
		}
		return false
	})
	return status, msg
}

const noopTemplate = `version: 1
steps:
  - {id: check, title: Check, kind: system, action: noop, phase: preflight}
  - {id: work, title: Work, kind: system, action: noop}
  - {id: confirm, title: Confirm, kind: system, action: noop, phase: verify}
`

func sleepTemplate(phase, d string) string {
	return fmt.Sprintf(`version: 1
steps:
  - {id: nap, title: Nap, kind: system, action: sleep, phase: %s, args: {duration: "%s"}}
`, phase, d)
}
