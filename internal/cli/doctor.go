package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/supabase/migrations"
)

// Outcomes of a doctor check.
const (
	checkPass = "PASS"
	checkFail = "FAIL"
	checkWarn = "WARN"
	checkSkip = "SKIP"
)

// checkResult is one line of `opsd doctor`.
type checkResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Hint   string `json:"hint,omitempty"`
}

// check is one diagnosis. Checks run in order and share the doctor: the
// connectivity check opens the connections the later ones use.
type check struct {
	name string
	run  func(d *doctor, ctx context.Context) checkResult
}

// doctorChecks are the checks of `opsd doctor`, in the order they run.
func doctorChecks() []check {
	return []check{
		{"config", (*doctor).checkConfig},
		{"connectivity", (*doctor).checkConnectivity},
		{"schema", (*doctor).checkSchema},
		{"service role", (*doctor).checkServiceRole},
		{"realtime", (*doctor).checkRealtime},
		{"rls", (*doctor).checkRLS},
		{"clock", (*doctor).checkClock},
		{"vercel", (*doctor).checkVercel},
		{"github", (*doctor).checkGitHub},
		{"digitalocean", (*doctor).checkDigitalOcean},
	}
}

// doctor is what the checks share.
type doctor struct {
	e       *env
	anonKey string
	http    *http.Client

	kind  string         // "postgres" or "rest"; "" when no store is configured
	store executor.Store // nil until connectivity opened it
	conn  *pgx.Conn      // direct store only: a plain connection for catalog queries

	schemaMissing bool // set by the schema check: checks of opsd's functions and tables are skipped
}

// maxClockSkew is the clock difference to the database that doctor warns about.
const maxClockSkew = 2 * time.Second

func newDoctorCmd() *cobra.Command {
	var (
		anonKey string
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check configuration, database, permissions, realtime, RLS, clock and integrations",
		Long: `doctor runs every check below and prints PASS, FAIL, WARN or SKIP for each,
with a hint on what to do. It exits 1 when any check FAILs (2 for a
configuration it cannot load), so it fits a deploy pipeline or a cron job.

  config        which store the settings select, the lanes, the worker id
  connectivity  the store answers ping()
  schema        the database has exactly the migrations this binary needs
  service role  the daemon's credentials may call service-only functions
                (heartbeat_runs with no runs: it changes nothing)
  realtime      the tables the UI watches are in the supabase_realtime
                publication (direct store only; not checkable over REST)
  rls           the anon role cannot write run_events (direct store: tried
                in a rolled-back transaction; REST: needs --anon-key)
  clock         the local clock is within 2s of the database's
  vercel, github, digitalocean
                the token is configured, and a cheap authenticated GET works

No check writes anything that stays.`,
		Example: `  opsd doctor
  DATABASE_URL=postgres://postgres:PASSWORD@db.xyz.supabase.co:5432/postgres opsd doctor
  SUPABASE_URL=https://xyz.supabase.co SUPABASE_SERVICE_ROLE_KEY=... opsd doctor --anon-key "$SUPABASE_ANON_KEY"
  opsd doctor --json | jq '.[] | select(.status=="FAIL")'`,
		Args: usageArgs(cobra.NoArgs),
	}
	flagErrorsAreUsage(cmd)
	loader := withConfig(cmd)
	cmd.Flags().StringVar(&anonKey, "anon-key", "", "the project's anon key, for the RLS check over REST (env SUPABASE_ANON_KEY)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as a JSON array")
	cmd.Flags().DurationVar(&timeout, "check-timeout", 10*time.Second, "time limit of each check")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if timeout <= 0 {
			return usageErr(fmt.Errorf("--check-timeout %s: must be positive", timeout))
		}
		e, err := loadEnv(cmd, loader)
		if err != nil {
			return err
		}
		defer e.log.Sync() //nolint:errcheck
		if anonKey == "" {
			anonKey = os.Getenv("SUPABASE_ANON_KEY")
		}
		d := &doctor{e: e, anonKey: anonKey, http: &http.Client{Timeout: timeout}}
		defer d.close()
		results := d.run(cmd.Context(), doctorChecks(), timeout)
		if asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(results); err != nil {
				return err
			}
		} else {
			printResults(cmd.OutOrStdout(), results)
		}
		for _, r := range results {
			if r.Status == checkFail {
				return &ExitError{Code: 1}
			}
		}
		return nil
	}
	return cmd
}

// run runs the checks in order, each with its own time limit.
func (d *doctor) run(ctx context.Context, checks []check, timeout time.Duration) []checkResult {
	out := make([]checkResult, 0, len(checks))
	for _, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		r := c.run(d, cctx)
		cancel()
		r.Name = c.name
		// Error texts may quote a connection string: the redactor knows the
		// secrets. Multi-line driver errors become one line.
		r.Detail = strings.Join(strings.Fields(d.e.redactor.String(r.Detail)), " ")
		out = append(out, r)
	}
	return out
}

func (d *doctor) close() {
	d.http.CloseIdleConnections()
	if d.store != nil {
		d.store.Close()
	}
	if d.conn != nil {
		_ = d.conn.Close(context.Background())
	}
}

func printResults(w io.Writer, results []checkResult) {
	counts := map[string]int{}
	for _, r := range results {
		counts[r.Status]++
		fmt.Fprintf(w, "%-4s  %-13s %s\n", r.Status, r.Name, r.Detail)
		if r.Hint != "" {
			fmt.Fprintf(w, "      %-13s hint: %s\n", "", r.Hint)
		}
	}
	fmt.Fprintf(w, "\ndoctor: %d PASS, %d FAIL, %d WARN, %d SKIP\n",
		counts[checkPass], counts[checkFail], counts[checkWarn], counts[checkSkip])
}

func pass(format string, a ...any) checkResult {
	return checkResult{Status: checkPass, Detail: fmt.Sprintf(format, a...)}
}

func fail(hint, format string, a ...any) checkResult {
	return checkResult{Status: checkFail, Detail: fmt.Sprintf(format, a...), Hint: hint}
}

func warn(hint, format string, a ...any) checkResult {
	return checkResult{Status: checkWarn, Detail: fmt.Sprintf(format, a...), Hint: hint}
}

func skip(hint, format string, a ...any) checkResult {
	return checkResult{Status: checkSkip, Detail: fmt.Sprintf(format, a...), Hint: hint}
}

const hintMigrate = "apply the schema: opsd migrate --database-url URL (or supabase db push)"

func (d *doctor) checkConfig(ctx context.Context) checkResult {
	c := d.e.cfg
	kind, err := c.StoreKind()
	if err != nil {
		return fail("set DATABASE_URL (direct PostgreSQL), or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY (REST)", "%v", err)
	}
	d.kind = kind
	where := "REST store (PostgREST) at " + c.SupabaseURL
	if kind == "postgres" {
		where = "direct PostgreSQL store at " + redactedURL(c.DatabaseURL)
	}
	return pass("%s; lanes %s; worker %s", where, strings.Join(c.Lanes, ","), c.WorkerID)
}

// redactedURL shows where a database URL points, never its password.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(a key=value connection string)"
	}
	return u.Redacted()
}

func (d *doctor) checkConnectivity(ctx context.Context) checkResult {
	switch d.kind {
	case "":
		return skip("", "no store configured")
	case "rest":
		s, err := openStore(ctx, d.e)
		if err != nil {
			return fail("check SUPABASE_URL", "%v", err)
		}
		d.store = s
		if err := s.Ping(ctx); err != nil {
			return fail(storeHint(err), "ping() over REST failed: %v", err)
		}
		return pass("ping() answered over REST")
	}
	conn, err := pgx.Connect(ctx, d.e.cfg.DatabaseURL)
	if err != nil {
		return fail("check DATABASE_URL's host, port, user and password; on Supabase use the direct connection or the session pooler (port 5432)",
			"cannot connect: %v", err)
	}
	d.conn = conn
	var version string
	_ = conn.QueryRow(ctx, `SHOW server_version`).Scan(&version)
	s, err := openStore(ctx, d.e)
	if err != nil {
		var se *executor.StoreError
		if errors.As(err, &se) && se.Code == "42883" { // undefined_function: ping() is not there yet
			return pass("PostgreSQL %s reachable; ping() is missing (see schema)", version)
		}
		return fail(storeHint(err), "PostgreSQL %s reachable, but the store failed: %v", version, err)
	}
	d.store = s
	return pass("PostgreSQL %s answers ping()", version)
}

// storeHint suggests a fix for a store error by its kind.
func storeHint(err error) string {
	switch {
	case errors.Is(err, executor.ErrPermission):
		return "the credentials lack permission: use the service-role key (REST) or the postgres role (DATABASE_URL)"
	case errors.Is(err, executor.ErrNotFound):
		return hintMigrate
	case errors.Is(err, executor.ErrTransient):
		return "the database or API is unreachable or overloaded; check the URL and the network"
	}
	return ""
}

func (d *doctor) checkSchema(ctx context.Context) checkResult {
	want := migrations.SchemaVersion()
	if d.conn != nil {
		pending, err := migrations.Pending(ctx, d.conn)
		if err != nil {
			return fail("", "read applied migrations: %v", err)
		}
		if len(pending) > 0 {
			d.schemaMissing = true
			names := make([]string, len(pending))
			for i, m := range pending {
				names[i] = m.Version + "_" + m.Name
			}
			return fail(hintMigrate, "%d migration(s) pending (%s); this binary needs schema %s",
				len(pending), strings.Join(names, ", "), want)
		}
	}
	if d.store == nil {
		return skip("", "needs a working store connection")
	}
	got, err := d.store.SchemaVersion(ctx)
	if errors.Is(err, executor.ErrNotFound) || (err == nil && got == "") {
		d.schemaMissing = true
	}
	switch {
	case err != nil:
		return fail(storeHint(err), "read the schema version: %v", err)
	case got == want:
		return pass("schema %s, as this binary needs", got)
	case got > want:
		return fail("upgrade opsd: `opsd run` refuses a database newer than itself",
			"the database is at schema %s, newer than this binary's %s", got, want)
	default:
		return fail(hintMigrate, "the database is at schema %q; this binary needs %s", got, want)
	}
}
