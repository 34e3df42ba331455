// Package bench measures opsd against the targets of its design and against
// the design it replaces (the Deno ops-executor, re-enacted in baseline.go):
// pickup latency per wake-up path, no-op run throughput, event streaming,
// and the footprint of a real `opsd run` process. `opsd bench` runs it.
//
// Every scenario gets a scratch database (CREATE DATABASE + migrations.Migrate)
// on the PostgreSQL it is given, dropped afterwards; without one it starts a
// private cluster as `opsd dev` does (pgcluster, fsync off).
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/internal/pgcluster"
	"github.com/opscontrolroom/opsd/supabase/migrations"
)

// Scenarios in the order they run.
var Scenarios = []string{"pickup", "throughput", "stream", "footprint", "baseline"}

// Options select and size the scenarios. Zero sizes take the defaults of
// the mode (full or Quick).
type Options struct {
	// DatabaseURL is a superuser URL; empty starts a private cluster.
	DatabaseURL string
	// Scenarios to run (names of Scenarios); empty means all. "baseline"
	// adds the original design's numbers to pickup, throughput and stream.
	Scenarios []string
	// Quick is a few-second smoke run (CI): small sizes, no meaning in the numbers.
	Quick bool

	Samples         int           // pickup samples per wake-up path; 500 (quick 30)
	PollInterval    time.Duration // the poll path's interval; 100ms
	Runs            int           // throughput runs; 5,000 (quick 200)
	Sessions        int           // throughput sessions (x 4 lanes); 16 (quick 4)
	NoSessions      bool          // throughput runs without a session (not serialized per lane)
	Daemons         int           // throughput daemons in this process; 1
	LaneConcurrency int           // throughput runs in flight per lane per daemon; max(sessions, 16)
	Lines           int           // stream: chatty lines of one run; 200,000 (quick 5,000)
	Events          int           // stream: raw events through the writer, direct store; 400,000 (quick 20,000)
	RESTEvents      int           // stream: raw events through the writer, REST store; 100,000 (quick 5,000)
	InFlight        int           // footprint: runs in flight; 1,000 (quick 100)
	Binary          string        // footprint: the opsd binary to run (required for footprint)

	BaselineSamples  int           // baseline pickup samples; 60 (quick 4)
	BaselineDuration time.Duration // baseline throughput window; 10s (quick 2s)
	BaselineEvents   int           // baseline: events inserted one by one; 5,000 (quick 300)

	// PostgREST serves the databases of the REST paths (pickup's webhook
	// path, stream's REST store); nil skips those paths, with a note.
	PostgREST PostgRESTFunc
	// RESTDatabaseURL, when set, is the one database PostgREST serves (a
	// real PostgREST, given): the REST paths run on it rather than on the
	// scenario's scratch database. It is migrated, never dropped, and must
	// be used for nothing else: the bench's daemons claim any queued run.
	RESTDatabaseURL string

	// ProfileDir, when set, receives a CPU profile per scenario (<name>.pprof).
	ProfileDir string
	Log        *zap.Logger // daemon logs; default none
	Progress   io.Writer   // one line per step; default none
}

func (o *Options) defaults() {
	q := func(full, quick int) int {
		if o.Quick {
			return quick
		}
		return full
	}
	def := func(v *int, full, quick int) {
		if *v <= 0 {
			*v = q(full, quick)
		}
	}
	def(&o.Samples, 500, 30)
	def(&o.Runs, 5000, 200)
	def(&o.Daemons, 1, 1)
	def(&o.Lines, 200000, 5000)
	def(&o.Events, 400000, 20000)
	def(&o.RESTEvents, 100000, 5000)
	def(&o.InFlight, 1000, 100)
	def(&o.BaselineSamples, 60, 4)
	def(&o.BaselineEvents, 5000, 300)
	def(&o.Sessions, 16, 4)
	if o.LaneConcurrency <= 0 {
		o.LaneConcurrency = max(o.Sessions, 16)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	if o.BaselineDuration <= 0 {
		o.BaselineDuration = time.Duration(q(10, 2)) * time.Second
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if len(o.Scenarios) == 0 || slices.Contains(o.Scenarios, "all") {
		o.Scenarios = Scenarios
	}
}

// Validate names the first bad option.
func (o *Options) Validate() error {
	for _, s := range o.Scenarios {
		if s != "all" && !slices.Contains(Scenarios, s) {
			return fmt.Errorf("unknown scenario %q: choose from %s or all", s, strings.Join(Scenarios, ", "))
		}
	}
	if o.LaneConcurrency > 1000 {
		return fmt.Errorf("lane concurrency %d: at most 1000", o.LaneConcurrency)
	}
	return nil
}

// env is what scenarios share.
type env struct {
	o          *Options
	adminURL   string
	postmaster int // pid of the server when it runs here, for its CPU time
	rep        *Report
}

func (e *env) progress(format string, args ...any) {
	fmt.Fprintf(e.o.Progress, "bench: "+format+"\n", args...)
}

type scenarioFunc func(ctx context.Context, e *env, r *ScenarioResult) error

// Run runs the selected scenarios and returns their report. A scenario that
// fails is reported with its error; the others still run.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.defaults()
	e := &env{o: &o, adminURL: o.DatabaseURL}
	if e.adminURL == "" {
		e.progress("starting a private PostgreSQL in a temporary directory (as opsd dev does)")
		c, err := pgcluster.Start(ctx, pgcluster.Options{})
		if err != nil {
			return nil, fmt.Errorf("start PostgreSQL: %w", err)
		}
		defer func() {
			if err := c.Stop(); err != nil {
				e.progress("stop PostgreSQL: %v", err)
			}
		}()
		e.adminURL = c.URL
	}
	e.rep = newReport(ctx, e.adminURL, o)
	e.postmaster = findPostmaster(ctx, e.adminURL)
	funcs := map[string]scenarioFunc{"pickup": runPickup, "throughput": runThroughput,
		"stream": runStream, "footprint": runFootprint}
	// "baseline" adds the original design's side to the selected scenarios
	// it applies to (pickup, throughput, stream), or to all three when it is
	// selected alone.
	compared := []string{"pickup", "throughput", "stream"}
	withBaseline := map[string]bool{}
	if slices.Contains(o.Scenarios, "baseline") {
		for _, s := range compared {
			withBaseline[s] = slices.Contains(o.Scenarios, s)
		}
		if !slices.ContainsFunc(compared, func(s string) bool { return withBaseline[s] }) {
			for _, s := range compared {
				withBaseline[s] = true
			}
		}
	}
	for _, name := range Scenarios {
		fn := funcs[name]
		res := &ScenarioResult{Name: name, Counts: map[string]int64{},
			opsd: slices.Contains(o.Scenarios, name), baseline: withBaseline[name]}
		if fn == nil || !res.opsd && !res.baseline {
			continue
		}
		if err := e.runOne(ctx, fn, res); err != nil {
			res.Error = err.Error()
			e.progress("%s failed: %v", name, err)
		}
		e.rep.Scenarios = append(e.rep.Scenarios, res)
		if ctx.Err() != nil {
			e.rep.finish()
			return e.rep, ctx.Err()
		}
	}
	e.rep.finish()
	return e.rep, nil
}

// runOne runs a scenario with a CPU profile when asked, and records its
// duration and the process CPU time it used.
func (e *env) runOne(ctx context.Context, fn scenarioFunc, res *ScenarioResult) (err error) {
	e.progress("%s: start", res.Name)
	began, cpu0, pg0 := time.Now(), processCPU(), serverCPU(e.postmaster)
	if e.o.ProfileDir != "" {
		f, ferr := os.Create(filepath.Join(e.o.ProfileDir, res.Name+".pprof"))
		if ferr != nil {
			return ferr
		}
		defer f.Close()
		if perr := pprof.StartCPUProfile(f); perr == nil {
			defer pprof.StopCPUProfile()
		}
	}
	defer func() {
		res.Seconds = time.Since(began).Seconds()
		res.ProcessCPUSeconds = (processCPU() - cpu0).Seconds()
		if pg0 > 0 {
			res.PostgresCPUSeconds = (serverCPU(e.postmaster) - pg0).Seconds()
		}
		e.progress("%s: done in %.1fs", res.Name, res.Seconds)
	}()
	return fn(ctx, e, res)
}

// scratch is a migrated database of its own, dropped by close.
type scratch struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
	e    *env
	keep bool // a database the bench was given: close leaves it
}

// newScratch creates and migrates a database for one scenario.
func (e *env) newScratch(ctx context.Context, scenario string) (*scratch, error) {
	name := "opsd_bench_" + scenario + "_" + randHex(4)
	admin, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect as superuser: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	return e.migrated(ctx, &scratch{Name: name, URL: withDatabase(e.adminURL, name), e: e})
}

// servedDatabase migrates the database a given PostgREST serves and opens
// a pool on it; close leaves the database.
func (e *env) servedDatabase(ctx context.Context, dbURL string) (*scratch, error) {
	return e.migrated(ctx, &scratch{Name: "the database PostgREST serves", URL: dbURL, e: e, keep: true})
}

func (e *env) migrated(ctx context.Context, s *scratch) (*scratch, error) {
	conn, err := pgx.Connect(ctx, s.URL)
	if err == nil {
		_, err = migrations.Migrate(ctx, conn, migrations.BootstrapAuto)
		conn.Close(context.WithoutCancel(ctx))
	}
	if err == nil {
		cfg, perr := pgxpool.ParseConfig(s.URL)
		if perr != nil {
			err = perr
		} else {
			cfg.MaxConns = 16
			s.Pool, err = pgxpool.NewWithConfig(ctx, cfg)
		}
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("migrate %s: %w", s.Name, err)
	}
	return s, nil
}

func (s *scratch) close() {
	if s.Pool != nil {
		s.Pool.Close()
	}
	if s.keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, s.e.adminURL)
	if err != nil {
		s.e.progress("drop %s: %v", s.Name, err)
		return
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+s.Name+` WITH (FORCE)`); err != nil {
		s.e.progress("drop %s: %v", s.Name, err)
	}
}

// template inserts a run_templates row and returns its id.
func (s *scratch) template(ctx context.Context, slug, yaml string) (string, error) {
	var id string
	err := s.Pool.QueryRow(ctx, `INSERT INTO run_templates (slug, title, template_yaml) VALUES ($1, $1, $2) RETURNING id`,
		slug, yaml).Scan(&id)
	return id, err
}

func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return raw + " dbname=" + db // keyword/value form
	}
	u.Path = "/" + db
	return u.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitUntil polls cond every step until it holds or timeout passes.
func waitUntil(ctx context.Context, timeout, step time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
		}
	}
}

// recv waits for one value of ch.
func recv[T any](ctx context.Context, ch <-chan T, timeout time.Duration, what string) (T, error) {
	var zero T
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v := <-ch:
		return v, nil
	case <-t.C:
		return zero, fmt.Errorf("timed out after %s waiting for %s", timeout, what)
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

var errNoBinary = errors.New("footprint needs the opsd binary (--binary)")
