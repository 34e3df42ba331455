package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
)

// Config is one chaos run. Zero values take the defaults noted.
type Config struct {
	Binary string // the opsd binary (Build); required

	Duration time.Duration // how long the chaos lasts; default 20s
	Direct   int           // daemons on the direct store (--database-url); default 2
	REST     int           // daemons on the REST store through the faulty server; default 2
	Seed     uint64        // random seed; default from the clock (printed in the report)

	HeartbeatInterval time.Duration // default 300ms
	StaleAfter        time.Duration // default 2s
	ReaperPeriod      time.Duration // default 500ms

	EnqueueEvery time.Duration // mean time between enqueued runs; default 200ms
	CancelEvery  time.Duration // mean time between cancels; default 1s
	KillEvery    time.Duration // mean time between daemon stops; default 2s
	TermShare    float64       // share of stops that are SIGTERM instead of SIGKILL; default 0.2
	FaultRate    float64       // chance per REST request of each fault kind; default 0.02
	Outage       time.Duration // REST outage length; default 5s; negative for none
	OutageEvery  time.Duration // one outage per this long (default: one per run)
	DrainTimeout time.Duration // how long the queue may take to drain after the chaos; default 90s

	Logf func(format string, args ...any) // progress; default none
}

func (c *Config) defaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Duration, 20*time.Second)
	def(&c.HeartbeatInterval, 300*time.Millisecond)
	def(&c.StaleAfter, 2*time.Second)
	def(&c.ReaperPeriod, 500*time.Millisecond)
	def(&c.EnqueueEvery, 200*time.Millisecond)
	def(&c.CancelEvery, time.Second)
	def(&c.KillEvery, 2*time.Second)
	def(&c.Outage, 5*time.Second)
	def(&c.OutageEvery, c.Duration)
	def(&c.DrainTimeout, 90*time.Second)
	if c.Direct == 0 && c.REST == 0 {
		c.Direct, c.REST = 2, 2
	}
	if c.TermShare == 0 {
		c.TermShare = 0.2
	}
	if c.FaultRate == 0 {
		c.FaultRate = 0.02
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// jwtSecret signs the REST test server's keys.
const jwtSecret = "chaos-harness-jwt-secret-of-at-least-32-chars"

// template is a run_templates row the driver enqueues runs of.
type template struct {
	slug    string
	yaml    string
	weight  int
	timeout int // runs.timeout_seconds, 0 for none
	id      string
}

func step(id, phase, action, args string) string {
	if args != "" {
		args = ", args: " + args
	}
	return fmt.Sprintf("  - {id: %s, title: %s, kind: system, action: %s, phase: %s%s}\n", id, id, action, phase, args)
}

func sleepStep(id, phase, d string) string {
	return step(id, phase, "sleep", fmt.Sprintf("{duration: %q}", d))
}

// templates are the kinds of runs the driver enqueues; each harness seeds
// its own copies (their ids differ per database).
var templates = []template{
	{slug: "noop", weight: 30, yaml: "version: 1\nsteps:\n" + step("check", "preflight", "noop", "") + step("work", "action", "noop", "") + step("confirm", "verify", "noop", "")},
	{slug: "nap-preflight", weight: 25, yaml: "version: 1\nsteps:\n" + sleepStep("nap", "preflight", "1500ms") + step("work", "action", "noop", "")},
	{slug: "nap-action", weight: 25, yaml: "version: 1\nsteps:\n" + sleepStep("nap", "action", "1s") + step("confirm", "verify", "noop", "")},
	// A slow preflight (think: waiting on a provider's API) outlives a
	// heartbeat outage: the reaper requeues the run while its daemon, cut
	// off from the database, is still in it.
	{slug: "slow-preflight", weight: 6, yaml: "version: 1\nsteps:\n" + sleepStep("nap", "preflight", "4s") + step("work", "action", "noop", "")},
	{slug: "long-action", weight: 10, yaml: "version: 1\nsteps:\n" + step("check", "preflight", "noop", "") + sleepStep("nap", "action", "2500ms")},
	{slug: "nap-verify", weight: 10, yaml: "version: 1\nsteps:\n" + step("work", "action", "noop", "") + sleepStep("nap", "verify", "400ms")},
	{slug: "invalid", weight: 3, yaml: "version: 1\nsteps:\n" + sleepStep("nap", "action", "forever")},
	{slug: "times-out", weight: 2, timeout: 1, yaml: "version: 1\nsteps:\n" + sleepStep("nap", "action", "3s")},
}

// cancelRecord is one cancel the driver sent.
type cancelRecord struct {
	runID  string
	method string // rpc or update
	was    string // status when it was picked
	at     time.Time
	ok     bool
}

// harness is the state of one chaos run.
type harness struct {
	t    testing.TB
	cfg  Config
	rng  *rand.Rand
	db   *pgtest.DB
	rest *postgresttest.Server
	dir  string

	slots     []*proc     // the current process of each slot
	restartAt []time.Time // when a dead slot may start again
	procs     []*proc     // every process ever started
	gen       int

	templates []*template
	sessions  []string
	enqueued  []string
	cancels   []cancelRecord
	outages   []time.Time
	crashes   []string // unexpected exits, with the log's tail
	// startRefused counts daemons that exited at start because the REST
	// store was in an outage.
	startRefused int
	kills        int
	terms        int
	restarts     int
	began        time.Time
	ended        time.Time // end of the chaos
	drained      time.Duration
	drainOK      bool
}

// Run sets up PostgreSQL, the REST test server and the daemons, runs the
// chaos for cfg.Duration, drains the queue and returns the report. Setup
// failures end the test.
func Run(t testing.TB, cfg Config) *Report {
	t.Helper()
	h := newHarness(t, cfg)
	for i := range h.slots {
		h.start(i)
	}
	h.chaos()
	h.drain()
	h.stopAll()
	return h.check()
}

// newHarness sets up the database, the REST server, templates and sessions,
// with every daemon slot empty.
func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	cfg.defaults()
	if cfg.Binary == "" {
		t.Fatal("chaos: Config.Binary is required")
	}
	h := &harness{t: t, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), dir: t.TempDir()}
	h.db = pgtest.NewDB(t)
	h.rest = postgresttest.New(t, h.db.URL, jwtSecret)
	h.seed()
	n := cfg.Direct + cfg.REST
	h.slots, h.restartAt = make([]*proc, n), make([]time.Time, n)
	h.began = time.Now()
	t.Cleanup(h.killAll)
	return h
}

func (h *harness) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// seed creates the templates and sessions.
func (h *harness) seed() {
	ctx, cancel := h.ctx()
	defer cancel()
	for _, t := range templates {
		tp := t
		h.templates = append(h.templates, &tp)
		if err := h.db.Pool.QueryRow(ctx, `INSERT INTO run_templates (slug, title, template_yaml) VALUES ($1, $1, $2) RETURNING id`,
			tp.slug, tp.yaml).Scan(&tp.id); err != nil {
			h.t.Fatalf("chaos: template %s: %v", tp.slug, err)
		}
	}
	for i := 0; i < 4; i++ {
		var id string
		if err := h.db.Pool.QueryRow(ctx, `INSERT INTO sessions (title) VALUES ($1) RETURNING id`, fmt.Sprintf("chaos %d", i)).Scan(&id); err != nil {
			h.t.Fatalf("chaos: session: %v", err)
		}
		h.sessions = append(h.sessions, id)
	}
}

func (h *harness) storeOf(slot int) string {
	if slot < h.cfg.Direct {
		return storeDirect
	}
	return storeREST
}

// start launches a new process in slot, with a worker id naming the slot
// and the generation.
func (h *harness) start(slot int, extra ...string) {
	h.gen++
	store := h.storeOf(slot)
	worker := fmt.Sprintf("%s%d-g%d", store, slot, h.gen)
	args := []string{"--http-addr", "", "--log-format", "json", "--lane-concurrency", "4",
		"--heartbeat-interval", h.cfg.HeartbeatInterval.String(), "--stale-after", h.cfg.StaleAfter.String(),
		"--reaper-period", h.cfg.ReaperPeriod.String(), "--poll-interval", "100ms", "--poll-max-interval", "300ms",
		"--shutdown-grace", "2s"}
	// Direct daemons are woken by NOTIFY and would win every race for a
	// shared lane, so the REST daemons get lanes of their own (D) besides
	// the shared ones (B, C); lane A is direct only.
	if store == storeDirect {
		args = append(args, "--database-url", h.db.URL, "--lanes", "A,B,C")
	} else {
		args = append(args, "--supabase-url", h.rest.URL, "--supabase-service-role-key", h.rest.ServiceKey(), "--lanes", "B,C,D")
	}
	p, err := startProc(h.cfg.Binary, h.dir, slot, store, worker, append(args, extra...))
	if err != nil {
		h.t.Fatalf("chaos: %v", err)
	}
	h.slots[slot] = p
	h.procs = append(h.procs, p)
}

// chaos is the driver loop: enqueue, cancel, stop daemons, inject faults.
func (h *harness) chaos() {
	cfg := h.cfg
	h.began = time.Now()
	end := h.began.Add(cfg.Duration)
	if cfg.FaultRate > 0 && cfg.REST > 0 {
		h.injectFaults(cfg.Duration)
	}
	nextOutage := time.Time{}
	if cfg.Outage > 0 && cfg.REST > 0 {
		nextOutage = h.began.Add(time.Duration(float64(cfg.OutageEvery) * (0.25 + 0.3*h.rng.Float64())))
	}
	const tick = 50 * time.Millisecond
	chance := func(every time.Duration) bool { return every > 0 && h.rng.Float64() < float64(tick)/float64(every) }
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	lastLog := h.began
	for now := range ticker.C {
		if now.After(end) {
			break
		}
		h.supervise(now)
		if chance(cfg.EnqueueEvery) {
			h.enqueue()
		}
		if chance(cfg.CancelEvery) {
			h.cancel()
		}
		if chance(cfg.KillEvery) {
			h.stopOne(now)
		}
		if !nextOutage.IsZero() && now.After(nextOutage) && now.Add(cfg.Outage).Before(end) {
			h.rest.Outage(cfg.Outage)
			h.outages = append(h.outages, now)
			cfg.Logf("chaos: REST outage of %s at +%s", cfg.Outage, now.Sub(h.began).Round(time.Millisecond))
			nextOutage = now.Add(time.Duration(float64(cfg.OutageEvery) * (0.75 + 0.5*h.rng.Float64())))
		}
		if now.Sub(lastLog) >= 5*time.Second {
			lastLog = now
			cfg.Logf("chaos: +%s: %d runs enqueued, %d cancels, %d kills, %d terms, %d restarts",
				now.Sub(h.began).Round(time.Second), len(h.enqueued), len(h.cancels), h.kills, h.terms, h.restarts)
		}
	}
	h.ended = time.Now()
	h.rest.ClearFaults()
}

// supervise restarts slots whose process is gone: at the time chosen when
// the driver stopped it, or soon after an exit nobody asked for (a crash).
func (h *harness) supervise(now time.Time) {
	for i, p := range h.slots {
		if p.alive() {
			continue
		}
		if p.killed.IsZero() && p.termed.IsZero() && h.restartAt[i].IsZero() {
			last := tail(p.logPath, 1)
			if p.exitCode() == 1 && strings.Contains(last, "(injected outage)") {
				// opsd refuses to start while its store is unreachable (it
				// cannot check the schema): systemd restarts it, as we do.
				h.startRefused++
			} else {
				h.crashes = append(h.crashes, fmt.Sprintf("%s exited with code %d at +%s:\n%s", p.worker, p.exitCode(),
					p.exited.Sub(h.began).Round(time.Millisecond), tail(p.logPath, 8)))
			}
			h.restartAt[i] = now.Add(300 * time.Millisecond)
		}
		if h.restartAt[i].IsZero() { // a SIGTERMed process that just exited
			h.restartAt[i] = now.Add(time.Duration(h.rng.Int64N(int64(500 * time.Millisecond))))
		}
		if now.After(h.restartAt[i]) {
			h.restartAt[i] = time.Time{}
			h.start(i)
			h.restarts++
		}
	}
}

// drain restarts every slot and waits until no run is queued or running.
func (h *harness) drain() {
	began := time.Now()
	deadline := began.Add(h.cfg.DrainTimeout)
	for now := time.Now(); now.Before(deadline); now = time.Now() {
		for i, p := range h.slots {
			if !p.alive() && !h.restartAt[i].IsZero() {
				h.restartAt[i] = now // no more waiting: drain needs every daemon
			}
		}
		h.supervise(now)
		ctx, cancel := h.ctx()
		var open int
		err := h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM runs WHERE status IN ('queued', 'running')
			OR (status = 'canceled' AND finished_at IS NULL)`).Scan(&open)
		cancel()
		if err != nil {
			h.t.Fatalf("chaos: drain: %v", err)
		}
		if open == 0 {
			h.drained, h.drainOK = time.Since(began), true
			h.cfg.Logf("chaos: queue drained in %s", h.drained.Round(time.Millisecond))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.drained = time.Since(began)
	h.cfg.Logf("chaos: queue did not drain within %s", h.cfg.DrainTimeout)
}

// stopAll stops every daemon gracefully (so their logs are complete), and
// kills the ones that do not stop within 15 s.
func (h *harness) stopAll() {
	for _, p := range h.slots {
		if p != nil {
			p.term()
		}
	}
	for _, p := range h.slots {
		if p == nil {
			continue
		}
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.kill()
			h.crashes = append(h.crashes, p.worker+" did not stop within 15s of SIGTERM")
		}
		if p.exitCode() != 0 && p.killed.IsZero() {
			h.crashes = append(h.crashes, fmt.Sprintf("%s exited with code %d on SIGTERM:\n%s", p.worker, p.exitCode(), tail(p.logPath, 8)))
		}
	}
}

// killAll is the cleanup of a test that failed midway.
func (h *harness) killAll() {
	for _, p := range h.procs {
		if p.alive() {
			p.kill()
		}
	}
	if h.t.Failed() {
		for _, p := range h.procs {
			if b, err := os.ReadFile(p.logPath); err == nil && strings.Contains(string(b), "panic") {
				h.t.Logf("chaos: %s log tail:\n%s", p.worker, tail(p.logPath, 40))
			}
		}
	}
}
