package cli

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// devDataDir is a fresh data directory. It is made under the system temp
// directory, not t.TempDir: as root the server runs as the postgres user,
// which cannot enter t.TempDir's private parent.
func devDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "opsd-dev-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// assertNoServerLeft checks that no PostgreSQL runs on dir.
func assertNoServerLeft(t *testing.T, dir string) {
	t.Helper()
	assert.Zero(t, postmasterPID(filepath.Join(dir, "pgdata")), "a postmaster still runs on %s", dir)
	out, err := exec.Command("pgrep", "-f", dir).Output()
	var ee *exec.ExitError
	assert.True(t, errors.As(err, &ee) && ee.ExitCode() == 1, "pgrep -f %s found processes (err %v):\n%s", dir, err, out)
}

func TestDevDemoRunsAndStopsEverything(t *testing.T) {
	t.Parallel()
	dir := devDataDir(t)
	ctx := testContext(t)
	args := []string{"dev", "--demo-exit", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--log-level", "warn"}

	var out syncBuffer
	code, stderr := runCLI(ctx, &out, args...)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), stderr)
	s := out.String()
	for _, want := range []string{"starting PostgreSQL in " + dir, "serving http://127.0.0.1:", "demo: queued healthcheck",
		"[healthcheck]", "/readyz: 200", "[deploy]", "[deploy dry-run]", "dry run: action skipped", "preflight started", "verify started",
		"demo: all 3 runs succeeded", "PostgreSQL stopped"} {
		assert.Contains(t, s, want)
	}
	assert.Equal(t, 3, strings.Count(s, " success in "), "three runs succeeded")
	assertNoServerLeft(t, dir)

	// The next start reuses the cluster: the first demo's session is still there.
	out = syncBuffer{}
	code, stderr = runCLI(ctx, &out, args...)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), stderr)
	assert.NotContains(t, out.String(), "initdb")
	assertNoServerLeft(t, dir)
	assert.Equal(t, 2, countSessionsAfterStart(t, ctx, dir))
}

// countSessionsAfterStart starts the dev cluster on dir again (without the
// daemon's demo) to count the demo sessions, then stops it.
func countSessionsAfterStart(t *testing.T, ctx context.Context, dir string) int {
	t.Helper()
	var out syncBuffer
	done := make(chan int, 1)
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		code, _ := runCLI(dctx, &out, "dev", "--data-dir", dir, "--http-addr", "", "--log-level", "warn")
		done <- code
	}()
	var url string
	waitFor(t, time.Minute, "dev to start", func() bool {
		url = regexp.MustCompile(`postgres://\S+sslmode=disable`).FindString(out.String())
		return url != "" && strings.Contains(out.String(), "claiming lanes")
	})
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE title = 'opsd dev demo'`).Scan(&n))
	require.NoError(t, conn.Close(ctx))
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(time.Minute):
		t.Fatal("dev did not stop when its context ended")
	}
	assertNoServerLeft(t, dir)
	return n
}

// TestDevStopsOnSIGINT runs opsd dev as a child process (this test binary
// acting as opsd) and interrupts it, as Ctrl-C does.
func TestDevStopsOnSIGINT(t *testing.T) {
	t.Parallel()
	dir := devDataDir(t)
	cmd := exec.Command(os.Args[0], "dev", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--log-level", "warn")
	cmd.Env = append(os.Environ(), asOpsdEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})

	addr := ""
	deadline := time.After(time.Minute)
	for addr == "" {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "opsd dev exited before serving")
			if m := regexp.MustCompile(`serving http://(\S+)/healthz`).FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
		case <-deadline:
			t.Fatal("opsd dev did not start within a minute")
		}
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	select {
	case err := <-exited:
		require.NoError(t, err, "opsd dev should exit 0 on SIGINT")
	case <-time.After(time.Minute):
		t.Fatal("opsd dev did not exit within a minute of SIGINT")
	}
	assert.Contains(t, rest, "opsd dev: PostgreSQL stopped")
	assertNoServerLeft(t, dir)
}

func TestDevRefusesABusyPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dir := devDataDir(t)
	code, stderr := runCLI(testContext(t), nil, "dev", "--data-dir", dir, "--http-addr", ln.Addr().String())
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "--http-addr "+ln.Addr().String()+" is in use")
	_, err = os.Stat(filepath.Join(dir, "pgdata"))
	assert.True(t, os.IsNotExist(err), "PostgreSQL must not start when the port is busy")
}
