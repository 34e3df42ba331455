package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgcluster"
	"github.com/opscontrolroom/opsd/supabase/migrations"
)

// rootDataDir is the default data directory when running as root: the
// server runs as the postgres user, which cannot enter /root.
const rootDataDir = "/var/lib/opsd/dev"

// demoDrain is how long the demo may go on printing once the daemon stopped.
const demoDrain = 2 * time.Second

type devOptions struct {
	dataDir  string
	demo     bool
	demoExit bool
}

func newDevCmd() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run opsd on a fresh machine: a private PostgreSQL, the schema, the daemon, and optional demo runs",
		Long: `dev is the quickest way to see opsd work. It starts a private PostgreSQL from
the installed server binaries (Debian: apt-get install postgresql), keeps its
data in --data-dir (reused on the next start), applies the bootstrap and the
migrations, and runs the daemon on it with its HTTP server (/healthz, /readyz,
/metrics) at --http-addr. DATABASE_URL and the REST settings are ignored.
It installs two demo templates (opsd-demo-healthcheck, opsd-demo-deploy) and
allowlists the loopback addresses, so healthchecks may check local services.

--demo queues a few runs and streams their events here as they happen: a
healthcheck of opsd's own /healthz and /readyz (which checks the database),
and a multi-phase template deploy,
once for real and once as a dry run. With
--demo-exit, dev stops once they are finished (exit 1 if one did not succeed),
which is what CI runs.

Ctrl-C (SIGINT) or SIGTERM stops the daemon gracefully, then PostgreSQL;
nothing is left running. A second Ctrl-C stops at once.

The default data directory is $XDG_DATA_HOME/opsd/dev, else
~/.local/share/opsd/dev; as root it is ` + rootDataDir + `, since the server then
runs as the postgres OS user.`,
		Example: `  opsd dev --demo
  opsd dev --http-addr 127.0.0.1:9090 --data-dir /tmp/opsd-dev
  opsd dev --demo --demo-exit --data-dir "$(mktemp -d)" --http-addr 127.0.0.1:0   # CI
  # meanwhile, in another terminal (dev prints these with its URLs):
  export DATABASE_URL='postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable'
  opsd submit --kind healthcheck --env dev --input urls=http://127.0.0.1:8080/readyz --follow`,
		Args: usageArgs(cobra.NoArgs),
	}
	flagErrorsAreUsage(cmd)
	loader := withConfig(cmd)
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "", "where PostgreSQL keeps its data (default $XDG_DATA_HOME/opsd/dev or ~/.local/share/opsd/dev; "+rootDataDir+" as root)")
	cmd.Flags().BoolVar(&o.demo, "demo", false, "queue a few demo runs and stream their events")
	cmd.Flags().BoolVar(&o.demoExit, "demo-exit", false, "with --demo: stop once the demo runs are finished; exit 1 if one did not succeed")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		e, err := loadEnv(cmd, loader)
		if err != nil {
			return err
		}
		// A terminal is the audience here: readable logs unless asked otherwise.
		if !cmd.Flags().Changed("log-format") && os.Getenv("OPSD_LOG_FORMAT") == "" {
			if e.log, err = newLogger(e.cfg.LogLevel, "console", e.redactor); err != nil {
				return usageErr(err)
			}
		}
		defer e.log.Sync() //nolint:errcheck
		if o.demoExit {
			o.demo = true
		}
		if o.dataDir == "" {
			if o.dataDir, err = defaultDataDir(); err != nil {
				return usageErr(err)
			}
		}
		// Absolute: as root the server's commands run from "/".
		if o.dataDir, err = filepath.Abs(o.dataDir); err != nil {
			return usageErr(fmt.Errorf("--data-dir: %w", err))
		}
		return runDev(cmd.Context(), cmd.OutOrStdout(), e, o)
	}
	return cmd
}

// runDev starts PostgreSQL, migrates it, and runs the daemon on it until a
// signal (or the end of the demo with --demo-exit). PostgreSQL is stopped
// on every way out.
func runDev(ctx context.Context, out io.Writer, e *env, o devOptions) (err error) {
	// Signals during start-up end it cleanly too; runDaemon handles its own.
	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()

	if err := checkListen(e.cfg.HTTPAddr); err != nil {
		return err
	}
	if err := checkDataDir(o.dataDir); err != nil {
		return err
	}
	if e.cfg.DatabaseURL != "" || e.cfg.SupabaseURL != "" {
		fmt.Fprintln(out, "opsd dev: ignoring DATABASE_URL / SUPABASE_URL: dev runs on its own PostgreSQL")
	}
	// Parents the server must pass through are made traversable; pgcluster
	// makes the data directory itself private to the server's user.
	if err := os.MkdirAll(filepath.Dir(o.dataDir), 0o755); err != nil {
		return usageErr(fmt.Errorf("--data-dir %s: %w", o.dataDir, err))
	}
	fmt.Fprintf(out, "opsd dev: starting PostgreSQL in %s\n", o.dataDir)
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: o.dataDir})
	if errors.Is(err, pgcluster.ErrNoServer) {
		return &ExitError{Code: 2, Err: err}
	}
	if err != nil {
		return fmt.Errorf("start PostgreSQL in %s: %w", o.dataDir, err)
	}
	defer func() {
		if serr := cluster.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop PostgreSQL: %w", serr))
			return
		}
		fmt.Fprintln(out, "opsd dev: PostgreSQL stopped")
	}()

	if err := migrateURL(ctx, cluster.URL, e.log); err != nil {
		return fmt.Errorf("migrate the dev database: %w", err)
	}
	templates, err := installDemoTemplates(ctx, cluster.URL)
	if err != nil {
		return err
	}
	e.cfg.DatabaseURL, e.cfg.SupabaseURL, e.cfg.SupabaseServiceRoleKey = cluster.URL, "", ""
	fmt.Fprintf(out, "opsd dev: PostgreSQL on port %d, schema %s\n", cluster.Port, migrations.SchemaVersion())
	// Healthchecks may check services on this machine, opsd's own endpoints
	// first; the URL policy refuses loopback addresses unless allowlisted.
	e.cfg.Integrations.URLAllowlist = append(e.cfg.Integrations.URLAllowlist, loopbackHosts(e.cfg.HTTPAddr)...)
	daemonCtx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	demoCtx, stopDemo := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDemo()
	var (
		wg      sync.WaitGroup
		demoErr error
	)
	started := func(d *executor.Daemon, addr string) {
		printDevBanner(out, cluster.URL, d.WorkerID(), addr, e.cfg.Lanes)
		if !o.demo {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			demoErr = runDemo(demoCtx, out, cluster.URL, addr, templates, e.cfg.Lanes)
			if o.demoExit {
				stopDaemon()
			}
		}()
	}
	err = runDaemon(daemonCtx, e, false, started)
	// The daemon finished or released its runs: let the demo print their
	// last events, but not wait for released runs to run again.
	t := time.AfterFunc(demoDrain, stopDemo)
	wg.Wait()
	t.Stop()
	switch {
	case err != nil:
		return err
	case o.demoExit && demoErr != nil:
		return &ExitError{Code: 1, Err: demoErr}
	}
	return nil
}

func printDevBanner(out io.Writer, dbURL, worker, addr string, lanes []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "opsd dev: daemon %s claiming lanes %s\n", worker, strings.Join(lanes, ","))
	if addr != "" {
		fmt.Fprintf(&b, "opsd dev: serving %s/healthz /readyz /metrics\n", localBaseURL(addr))
	}
	fmt.Fprintf(&b, "opsd dev: try, in another terminal:\n")
	fmt.Fprintf(&b, "  export DATABASE_URL='%s'\n", dbURL)
	if addr != "" {
		fmt.Fprintf(&b, "  opsd submit --kind healthcheck --env dev --input urls=%s/readyz --follow\n", localBaseURL(addr))
	}
	fmt.Fprintf(&b, "  opsd submit --kind deploy --env dev --template %s --input project=web --follow\n", demoDeploySlug)
	fmt.Fprintf(&b, "  opsd status\n")
	fmt.Fprintf(&b, "opsd dev: Ctrl-C stops the daemon and PostgreSQL\n")
	io.WriteString(out, b.String()) //nolint:errcheck
}

// localBaseURL is the http:// URL of the address the daemon serves on, with
// an unspecified host (":8080", "0.0.0.0:8080") replaced by 127.0.0.1.
func localBaseURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// loopbackHosts are the hosts dev allowlists for HTTP checks: the loopback
// addresses, and the host of the HTTP address when it names one.
func loopbackHosts(httpAddr string) []string {
	hosts := []string{"127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(httpAddr); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// defaultDataDir is $XDG_DATA_HOME/opsd/dev, else ~/.local/share/opsd/dev;
// rootDataDir as root.
func defaultDataDir() (string, error) {
	if os.Geteuid() == 0 {
		return rootDataDir, nil
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "opsd", "dev"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --data-dir given and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "opsd", "dev"), nil
}

// checkListen fails early, before PostgreSQL starts, when the HTTP address
// cannot be bound.
func checkListen(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return usageErr(fmt.Errorf("--http-addr %s is in use (another opsd dev or opsd run?): choose another, e.g. --http-addr 127.0.0.1:8081, or 127.0.0.1:0 for any free port", addr))
	}
	if err != nil {
		return usageErr(fmt.Errorf("--http-addr %s: %w", addr, err))
	}
	return ln.Close()
}

// checkDataDir catches the two ways a data directory fails that
// PostgreSQL's own errors explain badly: a server still running on it, and
// (as root) a directory the postgres user cannot reach.
func checkDataDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return usageErr(fmt.Errorf("--data-dir %s: %w", dir, err))
	}
	pgdata := filepath.Join(abs, "pgdata")
	if pid := postmasterPID(pgdata); pid > 0 {
		how := "pg_ctl -D " + pgdata + " stop"
		if os.Geteuid() == 0 {
			how = "su postgres -c '" + how + "'"
		}
		return usageErr(fmt.Errorf("a PostgreSQL server (pid %d) is already running on %s: another opsd dev, or one left by an opsd dev that was killed; stop it with: %s", pid, pgdata, how))
	}
	if os.Geteuid() != 0 {
		return nil
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		return nil // pgcluster says what to install
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err == nil && st.Mode().Perm()&0o001 == 0 {
			if sys, ok := st.Sys().(*syscall.Stat_t); !ok || strconv.Itoa(int(sys.Uid)) != pg.Uid {
				return usageErr(fmt.Errorf("--data-dir %s: PostgreSQL runs as the postgres user, which cannot enter %s (mode %v); choose a directory outside it, e.g. %s", dir, d, st.Mode().Perm(), rootDataDir))
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// postmasterPID is the pid of a live server on pgdata, or 0.
func postmasterPID(pgdata string) int {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0
	}
	if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
		return pid
	}
	return 0 // a stale pid file from a crash: PostgreSQL recovers from it
}
