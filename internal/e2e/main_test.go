package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

var opsdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "opsd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	opsdBin = filepath.Join(dir, "opsd")
	out, err := exec.Command("go", "build", "-o", opsdBin, "github.com/opscontrolroom/opsd/cmd/opsd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build opsd: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one `opsd run` process.
type proc struct {
	cmd  *exec.Cmd
	done chan error
	mu   sync.Mutex
	logs strings.Builder
}

func startOpsd(t *testing.T, dbURL, worker string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"run", "--database-url", dbURL, "--worker-id", worker, "--http-addr", "",
		"--heartbeat-interval", "300ms", "--stale-after", "2s", "--reaper-period", "500ms",
		"--poll-interval", "100ms", "--poll-max-interval", "300ms", "--log-format", "json"}, extra...)
	cmd := exec.Command(opsdBin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=", "SUPABASE_URL=")
	return launch(t, cmd, worker)
}

// launch starts cmd, collects its stderr (the JSON log) for Logs, and kills
// it at cleanup, logging what it said when the test failed.
func launch(t *testing.T, cmd *exec.Cmd, name string) *proc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("opsd %s logs:\n%s", name, p.Logs())
		}
	})
	return p
}

func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // keep it for cleanup
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatalf("wait: %v", err)
	case <-time.After(timeout):
		t.Fatalf("opsd did not exit within %s", timeout)
	}
	return -1
}

func (p *proc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(s))
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func template(t *testing.T, pool *pgxpool.Pool, slug, phase, duration string) string {
	t.Helper()
	var id string
	yaml := fmt.Sprintf("version: 1\nsteps:\n  - {id: nap, kind: system, action: sleep, phase: %s, args: {duration: %q}}\n", phase, duration)
	require.NoError(t, pool.QueryRow(context.Background(),
		`INSERT INTO run_templates (slug, title, template_yaml) VALUES ($1, $1, $2) RETURNING id`, slug, yaml).Scan(&id))
	return id
}
