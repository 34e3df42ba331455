package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
	"github.com/opscontrolroom/opsd/supabase/reststore"
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
func openPG(ctx context.Context, url string, maxConns int32) (*pgstore.Store, error) {
	return pgstore.New(ctx, pgstore.Config{URL: url, MaxConns: maxConns})
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

// PostgREST is a PostgREST the REST paths of the scenarios go through:
// pickup's webhook path and stream's REST store.
type PostgREST struct {
	URL            string // the Supabase project URL form: PostgREST under /rest/v1
	ServiceRoleKey string
	Close          func() // stops it; nil when there is nothing to stop
}

// PostgRESTFunc starts, or hands out, a PostgREST serving the database at
// dbURL. `opsd bench` hands out the real one it is given; the test server
// (internal/postgresttest) is only in cmd/opsbench and in tests, so that
// the opsd binary holds no test machinery.
type PostgRESTFunc func(ctx context.Context, dbURL string) (*PostgREST, error)

// GivenPostgREST hands out a running PostgREST (a real one: Supabase, or
// postgrest on PATH) for every scenario; set Options.RESTDatabaseURL to the
// database it serves.
func GivenPostgREST(url, serviceRoleKey string) PostgRESTFunc {
	return func(context.Context, string) (*PostgREST, error) {
		return &PostgREST{URL: url, ServiceRoleKey: serviceRoleKey}, nil
	}
}

// restSide is a PostgREST and the database it serves, with a reststore.Store on
// it with the service-role key (the daemon's view).
type restSide struct {
	sc    *scratch // the served database: the scenario's own, or Options.RESTDatabaseURL
	pr    *PostgREST
	owned bool // sc is not the scenario's own: close it
}

// openREST gives the scenario whose database is sc a PostgREST, or nil
// when there is none (Options.PostgREST unset).
func (e *env) openREST(ctx context.Context, sc *scratch) (*restSide, error) {
	if e.o.PostgREST == nil {
		return nil, nil
	}
	rs := &restSide{sc: sc}
	if e.o.RESTDatabaseURL != "" {
		fixed, err := e.servedDatabase(ctx, e.o.RESTDatabaseURL)
		if err != nil {
			return nil, err
		}
		rs.sc, rs.owned = fixed, true
	}
	pr, err := e.o.PostgREST(ctx, rs.sc.URL)
	if err != nil {
		rs.close()
		return nil, fmt.Errorf("PostgREST: %w", err)
	}
	rs.pr = pr
	return rs, nil
}

func (r *restSide) store() (*reststore.Store, error) {
	return reststore.New(reststore.Config{URL: r.pr.URL, ServiceRoleKey: r.pr.ServiceRoleKey})
}

func (r *restSide) close() {
	if r.pr != nil && r.pr.Close != nil {
		r.pr.Close()
	}
	if r.owned {
		r.sc.close()
	}
}

// noPostgREST is the note of a scenario whose REST path did not run.
const noPostgREST = "no PostgREST: pass --supabase-url and --supabase-service-role-key of a PostgREST serving --database-url's database (used for nothing else), or run cmd/opsbench, which brings a PostgREST-compatible test server"
