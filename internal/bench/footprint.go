package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runFootprint runs a real `opsd run` process on a scratch database and
// reads its memory from /proc/PID/status and its goroutines from /metrics:
// idle, then with InFlight runs sleeping at once. It also measures the time
// from exec to the claim of a run that was queued before the process started
// (runs.claimed_at, the database's clock on this machine) and the binary size.
func runFootprint(ctx context.Context, e *env, res *ScenarioResult) error {
	if e.o.Binary == "" {
		return errNoBinary
	}
	bin, err := os.Stat(e.o.Binary)
	if err != nil {
		return fmt.Errorf("opsd binary: %w", err)
	}
	sc, err := e.newScratch(ctx, "footprint")
	if err != nil {
		return err
	}
	defer sc.close()
	nap := map[bool]string{true: "10s", false: "60s"}[e.o.Quick]
	quickTpl, err := sc.template(ctx, "bench-noop", noopTemplate)
	if err != nil {
		return err
	}
	sleepTpl, err := sc.template(ctx, "bench-sleep", fmt.Sprintf(`version: 1
steps:
  - {id: nap, title: Nap, kind: system, action: sleep, args: {duration: %s}}
`, nap))
	if err != nil {
		return err
	}
	var first string
	if err := sc.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, template_id, intent) VALUES ('dev', 'healthcheck', $1, 'bench first claim') RETURNING id`,
		quickTpl).Scan(&first); err != nil {
		return err
	}

	p, err := startOpsd(e.o.Binary, sc.URL, e.o.InFlight/4+16)
	if err != nil {
		return err
	}
	defer p.kill()
	var claimedAt time.Time
	if err := waitUntil(ctx, 30*time.Second, 2*time.Millisecond, "the first claim", func() (bool, error) {
		var at *time.Time
		err := sc.Pool.QueryRow(ctx, `SELECT claimed_at FROM runs WHERE id = $1`, first).Scan(&at)
		if at != nil {
			claimedAt = *at
		}
		return at != nil, p.exited(err)
	}); err != nil {
		return err
	}
	res.set("start to first claim", "ms", true, ms(claimedAt.Sub(p.started)), 100)
	if err := waitUntil(ctx, 30*time.Second, 20*time.Millisecond, "the first run to finish", func() (bool, error) {
		var done bool
		err := sc.Pool.QueryRow(ctx, `SELECT finished_at IS NOT NULL FROM runs WHERE id = $1`, first).Scan(&done)
		return done, p.exited(err)
	}); err != nil {
		return err
	}
	time.Sleep(map[bool]time.Duration{true: 300 * time.Millisecond, false: 2 * time.Second}[e.o.Quick]) // settle
	idle, _, err := p.memory()
	if err != nil {
		return err
	}
	idleG, err := p.metric("go_goroutines")
	if err != nil {
		return err
	}
	res.set("RSS idle", "MB", true, idle, 20)
	res.set("goroutines idle", "goroutines", true, idleG)

	if _, err := sc.Pool.Exec(ctx, `INSERT INTO runs (env, kind, template_id, lane, intent)
		SELECT 'dev', 'healthcheck', $1, chr(65 + g % 4), 'bench in flight' FROM generate_series(0, $2::int - 1) g`,
		sleepTpl, e.o.InFlight); err != nil {
		return err
	}
	if err := waitUntil(ctx, 2*time.Minute, 50*time.Millisecond, fmt.Sprintf("%d runs in flight", e.o.InFlight), func() (bool, error) {
		n, err := p.metric("opsd_runs_in_flight")
		return int(n) >= e.o.InFlight, p.exited(err)
	}); err != nil {
		return err
	}
	time.Sleep(3500 * time.Millisecond) // one heartbeat of every lease (default 3s) is part of the footprint
	rss, hwm, err := p.memory()
	if err != nil {
		return err
	}
	g, err := p.metric("go_goroutines")
	if err != nil {
		return err
	}
	label := fmt.Sprintf("%s runs in flight", thousands(int64(e.o.InFlight)))
	if e.o.InFlight == 1000 {
		res.set("RSS with "+label, "MB", true, rss, 100)
	} else {
		res.set("RSS with "+label, "MB", true, rss)
	}
	res.set("RSS peak (VmHWM) with "+label, "MB", true, hwm)
	res.set("goroutines with "+label, "goroutines", true, g)
	res.set("binary size", "MB", true, float64(bin.Size())/(1<<20))
	res.Counts["in_flight"] = int64(e.o.InFlight)
	res.note("a real `%s run` process (direct store, lane concurrency %d, log level warn) on a scratch database; RSS = VmRSS of /proc/PID/status, goroutines = go_goroutines of its /metrics; idle = after its first run finished; in flight = %d runs each in a %s sleep step, measured after one more heartbeat", e.o.Binary, e.o.InFlight/4+16, e.o.InFlight, nap)
	res.note("start to first claim = from just before exec to runs.claimed_at of a run queued before the process started (both clocks of this machine); it includes the runtime's start, configuration, the pool's first connection and the schema check. Binary size is of %s, which includes `opsd bench` itself", e.o.Binary)
	return p.stop()
}

// opsdProcess is a running `opsd run`.
type opsdProcess struct {
	cmd     *exec.Cmd
	started time.Time
	metrics string
	stderr  *tailBuffer
	done    chan struct{}
	waitErr error
}

func startOpsd(binary, dbURL string, laneConcurrency int) (*opsdProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(binary, "run", "--http-addr", addr, "--lane-concurrency", strconv.Itoa(min(laneConcurrency, 1000)),
		"--log-level", "warn", "--shutdown-grace", "1s")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || k == "TEST_DATABASE_URL" || strings.HasPrefix(k, "OPSD_") || strings.HasPrefix(k, "SUPABASE_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "DATABASE_URL="+dbURL)
	p := &opsdProcess{cmd: cmd, metrics: "http://" + addr + "/metrics", stderr: &tailBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Discard, p.stderr
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s run: %w", binary, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited turns an early exit of the process into an error (or passes err).
func (p *opsdProcess) exited(err error) error {
	select {
	case <-p.done:
		return fmt.Errorf("opsd run exited: %v: %s", p.waitErr, p.stderr.String())
	default:
		return err
	}
}

// memory is VmRSS and VmHWM of the process, in MB.
func (p *opsdProcess) memory() (rss, hwm float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, p.exited(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm, nil
}

// metric sums the samples of one metric (every label set) of /metrics.
func (p *opsdProcess) metric(name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.metrics, nil)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, p.exited(nil) // not serving yet
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) > 0 {
			v, _ := strconv.ParseFloat(f[0], 64)
			sum += v
		}
	}
	return sum, sc.Err()
}

// stop sends SIGTERM and waits; in-flight runs are interrupted after the
// 1s shutdown grace.
func (p *opsdProcess) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.waitErr != nil {
			return fmt.Errorf("opsd run: %v: %s", p.waitErr, p.stderr.String())
		}
		return nil
	case <-time.After(90 * time.Second):
		p.kill()
		return fmt.Errorf("opsd run did not stop within 90s of SIGTERM: %s", p.stderr.String())
	}
}

func (p *opsdProcess) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
