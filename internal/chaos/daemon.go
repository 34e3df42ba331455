package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Build compiles the opsd binary into dir, with the race detector when race
// is set, and returns its path.
func Build(dir string, race bool) (string, error) {
	bin := filepath.Join(dir, "opsd")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/opscontrolroom/opsd/cmd/opsd")
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build opsd: %v\n%s", err, out)
	}
	return bin, nil
}

// Store kinds of a daemon slot.
const (
	storeDirect = "direct"
	storeREST   = "rest"
)

// proc is one `opsd run` process. Its stdout and stderr go to a log file.
type proc struct {
	slot    int
	store   string
	worker  string
	logPath string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process exited
	exitErr error         // valid after done
	killed  time.Time     // when SIGKILL was sent (zero if never)
	termed  time.Time     // when SIGTERM was sent (zero if never)
	exited  time.Time     // valid after done
}

// daemonEnv is the harness's environment without anything opsd would read
// as configuration, so that only the flags count.
func daemonEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "OPSD_"), strings.HasPrefix(k, "SUPABASE_"), k == "DATABASE_URL",
			strings.HasSuffix(k, "_TOKEN"), strings.HasSuffix(k, "_API_URL"), k == "VERCEL_TEAM_ID":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func startProc(bin, dir string, slot int, store, worker string, args []string) (*proc, error) {
	p := &proc{slot: slot, store: store, worker: worker, logPath: filepath.Join(dir, worker+".log"), done: make(chan struct{})}
	f, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, append([]string{"run", "--worker-id", worker}, args...)...)
	p.cmd.Env = daemonEnv()
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", worker, err)
	}
	p.started = time.Now()
	go func() {
		p.exitErr = p.cmd.Wait()
		p.exited = time.Now()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.alive() {
		p.killed = time.Now()
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// term sends SIGTERM (the graceful stop) without waiting.
func (p *proc) term() {
	if p.alive() && p.termed.IsZero() {
		p.termed = time.Now()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
}

// exitCode is the process's exit code, -1 when it died of a signal.
func (p *proc) exitCode() int {
	if p.exitErr == nil {
		return 0
	}
	if ee, ok := p.exitErr.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// logLine is one JSON log line of a daemon (other lines, such as a race
// report or a panic, are kept as raw text).
type logLine struct {
	worker string
	ts     time.Time
	level  string
	msg    string
	runID  string
	op     string
	raw    string
}

// zap's ISO8601 time encoder.
const zapTimeLayout = "2006-01-02T15:04:05.000Z0700"

func readLog(worker, path string) ([]logLine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		line := sc.Text()
		l := logLine{worker: worker, raw: line}
		var j struct {
			TS    string `json:"ts"`
			Level string `json:"level"`
			Msg   string `json:"msg"`
			RunID string `json:"run_id"`
			Op    string `json:"op"`
		}
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &j) == nil {
			l.level, l.msg, l.runID, l.op = j.Level, j.Msg, j.RunID, j.Op
			l.ts, _ = time.Parse(zapTimeLayout, j.TS)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// tail returns the last n lines of a log file, for failure reports.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
