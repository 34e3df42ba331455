package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/runbooks"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
)

// asOpsdEnv makes the test binary behave as the opsd command, so a test can
// run it as a child process and send it signals.
const asOpsdEnv = "OPSD_CLI_TEST_AS_OPSD"

func TestMain(m *testing.M) {
	if os.Getenv(asOpsdEnv) == "1" {
		os.Exit(Main(context.Background(), os.Args[1:]))
	}
	pgtest.Main(m)
}

// cliEnv is one test's migrated database and a store on it.
type cliEnv struct {
	t     *testing.T
	db    *pgtest.DB
	store *pgstore.Store
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	db := pgtest.NewDB(t)
	s, err := pgstore.New(context.Background(), pgstore.Config{URL: db.URL})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return &cliEnv{t: t, db: db, store: s}
}

var workerSeq atomic.Int64

// startDaemon runs a daemon in this process with the template resolver and
// short periods, stopped at cleanup.
func (c *cliEnv) startDaemon() *executor.Daemon {
	c.t.Helper()
	cfg := executor.Config{
		WorkerID: fmt.Sprintf("cli-test-%d", workerSeq.Add(1)), LaneConcurrency: 4,
		HeartbeatInterval: 200 * time.Millisecond, StaleAfter: 10 * time.Second, ReaperPeriod: 500 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, PollMaxInterval: 200 * time.Millisecond, ShutdownGrace: 5 * time.Second,
	}
	d, err := executor.New(cfg, c.store, &runbooks.Resolver{Store: c.store}, zaptest.NewLogger(c.t), nil)
	require.NoError(c.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx)
	c.t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		require.NoError(c.t, d.Stop(sctx))
		cancel()
	})
	return d
}

// template inserts a run template and returns its id.
func (c *cliEnv) template(slug, yaml string) string {
	c.t.Helper()
	var id string
	require.NoError(c.t, c.db.Pool.QueryRow(context.Background(),
		`INSERT INTO run_templates (slug, title, template_yaml) VALUES ($1, $1, $2) RETURNING id`, slug, yaml).Scan(&id))
	return id
}

// run runs the opsd command line against this test's database.
func (c *cliEnv) run(ctx context.Context, out *syncBuffer, args ...string) (int, string) {
	c.t.Helper()
	return runCLI(ctx, out, append(args, "--database-url", c.db.URL, "--log-level", "warn")...)
}

// runCLI runs the command line with args, writing stdout to out (a fresh
// buffer when nil); it returns the exit code as Main would and stderr.
func runCLI(ctx context.Context, out *syncBuffer, args ...string) (int, string) {
	if out == nil {
		out = &syncBuffer{}
	}
	var errOut syncBuffer
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(ctx)
	var ee *ExitError
	switch {
	case err == nil:
		return 0, errOut.String()
	case errors.As(err, &ee):
		if ee.Err != nil {
			fmt.Fprintln(&errOut, "opsd:", ee.Err)
		}
		return ee.Code, errOut.String()
	default:
		fmt.Fprintln(&errOut, "opsd:", err)
		return 1, errOut.String()
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or timeout passes.
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

// firstLine is the run id submit prints.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

const noopTemplate = `version: 1
steps:
  - {id: check, title: Check, kind: system, action: noop, phase: preflight, args: {message: "preflight check ok"}}
  - {id: work, title: Work, kind: system, action: noop, args: {message: "the work is done"}}
  - {id: confirm, title: Confirm, kind: system, action: noop, phase: verify}
`

// failingTemplate fails in validate: the sleep's duration is not one.
const failingTemplate = `version: 1
steps:
  - {id: work, title: Work, kind: system, action: noop}
  - {id: confirm, title: Confirm, kind: system, action: sleep, phase: verify, args: {duration: "soon"}}
`

// slowTemplate sleeps in its action phase until canceled.
const slowTemplate = `version: 1
steps:
  - {id: check, title: Check, kind: system, action: noop, phase: preflight}
  - {id: wait, title: Wait, kind: system, action: sleep, args: {duration: "10m"}}
`

// inputTemplate requires an input.
const inputTemplate = `version: 1
inputs:
  - {key: project, label: Vercel project, type: string, required: true}
steps:
  - {id: work, title: Work, kind: system, action: noop, args: {message: "deploying {{inputs.project}}"}}
`
