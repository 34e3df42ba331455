package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/deploy"
	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/backoff"
	"github.com/opscontrolroom/opsd/supabase/migrations"
)

func newRunCmd() *cobra.Command {
	var autoMigrate bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: claim runs per lane, execute them, heartbeat, reap, serve /healthz /readyz /metrics /v1/wake",
		Long: `run is the long-running daemon. It reaches Supabase through DATABASE_URL
(direct PostgreSQL: LISTEN/NOTIFY wake-ups, fastest writes) or through
SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY (PostgREST). Any number of daemons may
run against one database: claims are exclusive.

SIGTERM or SIGINT stops claiming, gives in-flight runs the shutdown grace, then
interrupts them (a run before its action phase goes back to the queue; one in
or after it ends in error), flushes events and exits 0. A second signal exits
at once.`,
		Example: `  DATABASE_URL=postgres://... opsd run --lanes A,B --http-addr :8080
  SUPABASE_URL=https://xyz.supabase.co SUPABASE_SERVICE_ROLE_KEY=... OPSD_WEBHOOK_SECRET=... opsd run
  opsd run --config /etc/opsd/opsd.yaml --idle-exit 5m`,
		Args: cobra.NoArgs,
	}
	loader := withConfig(cmd)
	cmd.Flags().BoolVar(&autoMigrate, "migrate", false, "apply pending migrations at start (direct store only)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		e, err := loadEnv(cmd, loader)
		if err != nil {
			return err
		}
		defer e.log.Sync() //nolint:errcheck
		return runDaemon(cmd.Context(), e, autoMigrate, nil)
	}
	return cmd
}

// runDaemon runs until a signal (or idle exit). started, when not nil, is
// called once the daemon claims and serves.
func runDaemon(ctx context.Context, e *env, autoMigrate bool, started func(*executor.Daemon, string)) error {
	begin := time.Now()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	if autoMigrate {
		if e.cfg.DatabaseURL == "" {
			return &ExitError{Code: 2, Err: errors.New("--migrate needs DATABASE_URL (migrations run over a direct connection)")}
		}
		if err := migrateURL(ctx, e.cfg.DatabaseURL, e.log); err != nil {
			return err
		}
	}
	opened, err := openStore(ctx, e)
	if err != nil {
		return err
	}
	defer opened.Close()
	store, err := withArtifactStorage(e, opened)
	if err != nil {
		return err
	}
	if err := checkSchemaPatiently(ctx, store, e.log); err != nil {
		return err
	}
	resolver, err := newResolver(e, store)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	d, err := executor.New(daemonConfig(e), store, resolver, e.log, nil)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}

	hardCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	var srv *http.Server
	addr := ""
	if e.cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", e.cfg.HTTPAddr)
		if err != nil {
			return &ExitError{Code: 2, Err: fmt.Errorf("http_addr = %q: %w", e.cfg.HTTPAddr, err)}
		}
		addr = ln.Addr().String()
		srv = executor.NewHTTPServer(addr, d.Handler(executor.HTTPConfig{
			WebhookSecret: e.cfg.WebhookSecret, SchemaVersion: migrations.SchemaVersion()}))
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				e.log.Error("http server", zap.Error(err))
			}
		}()
	}
	d.Start(hardCtx)
	if _, err := deploy.Ready(); err != nil {
		e.log.Warn("sd_notify READY", zap.Error(err))
	}
	e.log.Info("opsd running", zap.String("worker_id", d.WorkerID()), zap.Strings("lanes", e.cfg.Lanes),
		zap.String("http_addr", addr), zap.String("store", must(e.cfg.StoreKind())),
		zap.Duration("startup", time.Since(begin)), zap.String("version", Version))
	if started != nil {
		started(d, addr)
	}

	var watchdog <-chan time.Time
	if iv, ok := deploy.WatchdogInterval(); ok {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		watchdog = t.C
	}
	reason := ""
	for reason == "" {
		select {
		case s := <-sigs:
			reason = "signal " + s.String()
		case <-d.Idle():
			reason = fmt.Sprintf("idle for %s", e.cfg.IdleExit)
		case <-ctx.Done():
			reason = "context canceled"
		case <-watchdog:
			// Ping only while the daemon's loops are alive, so a wedged
			// daemon is restarted by systemd.
			if d.Alive() {
				_, _ = deploy.Watchdog()
			}
		}
	}
	e.log.Info("shutting down", zap.String("reason", reason), zap.Int("in_flight", d.InFlight()))
	_, _ = deploy.Stopping()
	stopCtx, stopCancel := context.WithTimeout(context.Background(), e.cfg.ShutdownGrace+45*time.Second)
	defer stopCancel()
	done := make(chan error, 1)
	go func() { done <- d.Stop(stopCtx) }()
	select {
	case err = <-done:
	case s := <-sigs:
		e.log.Warn("second signal: exiting now", zap.String("signal", s.String()))
		hardStop()
		return &ExitError{Code: 130}
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	e.log.Info("stopped cleanly")
	return nil
}

// startupPatience is how long a starting daemon waits out a store that fails
// transiently (an outage, a 5xx) before giving up.
const startupPatience = time.Minute

// checkSchemaPatiently checks the schema, retrying transient store failures
// with backoff for up to startupPatience, so a daemon (re)started during a
// database outage waits for it instead of exiting.
func checkSchemaPatiently(ctx context.Context, store executor.Store, log *zap.Logger) error {
	deadline := time.Now().Add(startupPatience)
	wait := backoff.Policy{Min: 250 * time.Millisecond, Max: 5 * time.Second}
	for failures := 1; ; failures++ {
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := checkSchema(sctx, store)
		cancel()
		if err == nil || !executor.Retryable(err) || time.Now().After(deadline) {
			return err
		}
		delay := wait.Delay(failures)
		log.Warn("store not reachable at start; retrying", zap.Duration("in", delay), zap.Error(err))
		if backoff.Sleep(ctx, delay) != nil {
			return err
		}
	}
}

func daemonConfig(e *env) executor.Config {
	c := e.cfg
	return executor.Config{
		WorkerID: c.WorkerID, Lanes: c.Lanes, LaneConcurrency: c.LaneConcurrency,
		HeartbeatInterval: c.HeartbeatInterval, StaleAfter: c.StaleAfter, ReaperPeriod: c.ReaperPeriod,
		PollInterval: c.PollInterval, PollMaxInterval: c.PollMaxInterval, ShutdownGrace: c.ShutdownGrace,
		PhaseTimeout: c.PhaseTimeout, ApprovalTimeout: c.ApprovalTimeout,
		ChattyRowsPerSecond: c.ChattyRowsPerSecond, ArtifactMaxBytes: c.ArtifactMaxBytes, IdleExit: c.IdleExit,
		Redactor: e.redactor, Notifier: newNotifier(e), Maintenance: maintenanceConfig(e), Retries: retryPolicies(e),
		// approval_envs "none" is a list naming no env: nothing is held for its label.
		Policy: &executor.Policy{ApprovalEnvs: append([]string{}, c.ApprovalEnvs...), AllowCrossEnv: c.Policy.AllowCrossEnv},
	}
}

func must(s string, _ error) string { return s }

func lookupEnv(k string) string { return os.Getenv(k) }
