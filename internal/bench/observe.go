package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
	"github.com/opscontrolroom/opsd/supabase"
)

// observed wraps the daemon's store and timestamps, in the daemon's own
// process, the moment a claim, an event batch or a finish is committed (the
// store call returned). Measuring there needs no observer polling the
// database, so no polling interval of ours is in the numbers.
type observed struct {
	executor.Store
	noWakeups bool // Wakeups returns nil: the daemon can only poll
	claimed   func(runs []*executor.Run, began, at time.Time)
	appended  func(events []executor.Event, at time.Time)
	finished  func(f executor.Finish, at time.Time)
}

func (s *observed) ClaimRuns(ctx context.Context, req executor.ClaimRequest) ([]*executor.Run, error) {
	began := time.Now()
	runs, err := s.Store.ClaimRuns(ctx, req)
	if err == nil && len(runs) > 0 && s.claimed != nil {
		s.claimed(runs, began, time.Now())
	}
	return runs, err
}

func (s *observed) AppendRows(ctx context.Context, worker string, rows executor.Rows) ([]executor.Lease, error) {
	refused, err := s.Store.AppendRows(ctx, worker, rows)
	now := time.Now()
	if err == nil && s.appended != nil && len(rows.Events) > 0 {
		s.appended(rows.Events, now)
	}
	if err == nil && s.finished != nil {
		for _, f := range rows.Finishes { // finishes made with the batch
			if !slices.Contains(refused, f.Lease) {
				s.finished(f, now)
			}
		}
	}
	return refused, err
}

func (s *observed) FinishRun(ctx context.Context, f executor.Finish) (bool, error) {
	ok, err := s.Store.FinishRun(ctx, f)
	if err == nil && ok && s.finished != nil {
		s.finished(f, time.Now())
	}
	return ok, err
}

func (s *observed) Wakeups(ctx context.Context) <-chan string {
	if s.noWakeups {
		return nil
	}
	return s.Store.Wakeups(ctx)
}

// openPG opens a direct store.
func openPG(ctx context.Context, url string, maxConns int32) (*supabase.PGStore, error) {
	return supabase.NewPGStore(ctx, supabase.PGConfig{URL: url, MaxConns: maxConns})
}

// daemon is a started executor.Daemon and how to stop it.
type daemon struct {
	*executor.Daemon
	cancel context.CancelFunc
}

func startDaemon(cfg executor.Config, store executor.Store, resolver executor.Resolver, log *zap.Logger) (*daemon, error) {
	d, err := executor.New(cfg, store, resolver, log, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx)
	return &daemon{Daemon: d, cancel: cancel}, nil
}

func (d *daemon) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := d.Stop(ctx)
	d.cancel()
	return err
}

// benchConfig is a daemon configuration for the bench: default periods,
// a long poll interval unless the scenario polls on purpose.
func benchConfig(worker string, laneConcurrency int) executor.Config {
	return executor.Config{WorkerID: worker, LaneConcurrency: laneConcurrency,
		PollInterval: 30 * time.Second, PollMaxInterval: 30 * time.Second, ShutdownGrace: 10 * time.Second}
}

// httpServer serves h on a free loopback port.
type httpServer struct {
	URL string
	srv *http.Server
}

func serveHTTP(h http.Handler) (*httpServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &httpServer{URL: "http://" + ln.Addr().String(), srv: executor.NewHTTPServer(ln.Addr().String(), h)}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *httpServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// restServer is the PostgREST-compatible server over a scratch database and
// a RESTStore on it with the service-role key.
type restServer struct {
	srv *postgresttest.Server
	tb  *tbAdapter
}

// startREST starts postgresttest on dbURL. postgresttest.New is a test
// helper taking a testing.TB; outside a test it gets tbAdapter, whose Fatalf
// panics with an error that is recovered here.
func startREST(dbURL string) (rs *restServer, err error) {
	tb := &tbAdapter{}
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(tbFatal)
			if !ok {
				panic(p)
			}
			tb.cleanup()
			rs, err = nil, f.err
		}
	}()
	srv := postgresttest.New(tb, dbURL, "opsd-bench-jwt-secret-"+randHex(16))
	return &restServer{srv: srv, tb: tb}, nil
}

// store opens a RESTStore with the service-role key (the daemon's view).
func (r *restServer) store() (*supabase.RESTStore, error) {
	return supabase.NewRESTStore(supabase.RESTConfig{URL: r.srv.URL, ServiceRoleKey: r.srv.ServiceKey()})
}

func (r *restServer) close() { r.tb.cleanup() }

// tbAdapter is the part of testing.TB postgresttest.New uses. Calling any
// other method panics (the embedded interface is nil).
type tbAdapter struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	errs     []error
}

type tbFatal struct{ err error }

func (t *tbAdapter) Helper()                   {}
func (t *tbAdapter) Name() string              { return "opsd-bench" }
func (t *tbAdapter) Logf(string, ...any)       {}
func (t *tbAdapter) Log(...any)                {}
func (t *tbAdapter) Fatal(args ...any)         { panic(tbFatal{errors.New(fmt.Sprint(args...))}) }
func (t *tbAdapter) Fatalf(f string, a ...any) { panic(tbFatal{fmt.Errorf(f, a...)}) }
func (t *tbAdapter) Errorf(f string, a ...any) {
	t.mu.Lock()
	t.errs = append(t.errs, fmt.Errorf(f, a...))
	t.mu.Unlock()
}
func (t *tbAdapter) Cleanup(fn func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, fn)
	t.mu.Unlock()
}

func (t *tbAdapter) cleanup() {
	t.mu.Lock()
	fns := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
