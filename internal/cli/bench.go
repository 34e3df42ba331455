package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/internal/bench"
	"github.com/opscontrolroom/opsd/internal/pgcluster"
)

// BenchSetup is what differs between `opsd bench` and cmd/opsbench.
type BenchSetup struct {
	// Use is the command's name: "bench" under opsd, "opsbench" alone.
	Use string
	// TestServer, when set, serves the REST paths when no real PostgREST is
	// given (cmd/opsbench: internal/bench/benchserver). opsd leaves it nil:
	// its binary holds no test server (cmd/opsd/deps_test.go).
	TestServer bench.PostgRESTFunc
	// Binary is the default opsd binary of the footprint scenario.
	Binary func() (string, error)
}

func newBenchCmd() *cobra.Command {
	return NewBenchCmd(BenchSetup{Use: "bench", Binary: os.Executable})
}

// NewBenchCmd builds the bench command: `opsd bench`, or cmd/opsbench's root.
func NewBenchCmd(setup BenchSetup) *cobra.Command {
	var (
		o                   bench.Options
		jsonFile            string
		verbose             bool
		restURL, serviceKey string
	)
	cmd := &cobra.Command{
		Use:   setup.Use,
		Short: "Measure pickup latency, throughput, event streaming and footprint, against the original design",
		Long: `bench measures opsd on this machine and prints a markdown table: each number
next to what the original design (the Deno ops-executor: a poll every 800 ms,
one run per poll, one awaited INSERT per event, a status read before every
step) does on the same machine in the same run, and next to opsd's target.

Scenarios (--scenario, comma-separated, default all):
  pickup      a run inserted into an idle lane: until claimed and until its first
              event is stored, p50/p95/p99, by LISTEN/NOTIFY, by webhook (REST store
              and POST /v1/wake) and by polling
  throughput  no-op template runs over sessions x 4 lanes, K daemons in this process
  stream      one run logging lines as fast as it can (coalescing, lines lost), and
              raw events through the writer on the direct and the REST store
  footprint   a real "opsd run" process: RSS idle and with 1,000 runs in flight,
              goroutines, start to first claim, binary size (--binary, default this
              executable)
  baseline    the original design's side of pickup, throughput and stream

Every scenario runs on a scratch database (CREATE DATABASE, migrations, DROP) of
the PostgreSQL at --database-url, which must be a superuser URL. DATABASE_URL is
deliberately not read: the bench never touches a database it was not pointed
at. Without --database-url it starts a private PostgreSQL, as opsd dev does
(fsync off), and stops it at the end.

The REST paths (pickup by webhook, the stream through the REST store) need a
PostgREST: a real one given with --supabase-url and --supabase-service-role-key,
which must serve the database of --database-url (migrated, never dropped, and
used for nothing else: the bench's daemons claim any queued run in it). Without
one, opsd bench skips those paths and says so; opsbench (go run ./cmd/opsbench)
then uses a PostgREST-compatible test server over each scratch database. The
opsd binary holds no test server.

--quick is a smoke run of a few seconds per scenario (CI): it checks that every
scenario works, and its numbers mean little. bench never fails on a missed
target; the table says which ones are missed.`,
		Example: `  opsd bench --quick
  opsd bench --database-url postgres://postgres@127.0.0.1:5432/postgres --json bench.json
  opsd bench --scenario pickup,baseline --samples 1000
  opsd bench --scenario throughput --daemons 2 --sessions 32 --lane-concurrency 32 --cpuprofile-dir /tmp/prof
  opsd bench --database-url postgres://postgres@db:5432/postgres --supabase-url http://db:3000 --supabase-service-role-key KEY
  go build -o opsd ./cmd/opsd && go run ./cmd/opsbench --quick --binary ./opsd`,
		Args: usageArgs(cobra.NoArgs),
	}
	flagErrorsAreUsage(cmd)
	f := cmd.Flags()
	f.StringVar(&o.DatabaseURL, "database-url", "", "superuser URL of the PostgreSQL to measure on (default: a private one, as opsd dev starts)")
	f.StringSliceVar(&o.Scenarios, "scenario", []string{"all"}, "scenarios: pickup, throughput, stream, footprint, baseline, or all")
	f.BoolVar(&o.Quick, "quick", false, "a few-second smoke run with small sizes (CI)")
	f.StringVar(&jsonFile, "json", "", "also write the results as JSON to this file")
	f.IntVar(&o.Samples, "samples", 0, "pickup: samples per wake-up path (default 500, quick 30)")
	f.DurationVar(&o.PollInterval, "poll-interval", 0, "pickup: poll interval of the poll path (default 100ms)")
	f.IntVar(&o.Runs, "runs", 0, "throughput: runs (default 5000, quick 200)")
	f.IntVar(&o.Sessions, "sessions", 0, "throughput: sessions, each with 4 lanes (default 16, quick 4)")
	f.BoolVar(&o.NoSessions, "no-sessions", false, "throughput: runs without a session (not serialized per lane)")
	f.IntVar(&o.Daemons, "daemons", 0, "throughput: daemons in this process (default 1)")
	f.IntVar(&o.LaneConcurrency, "lane-concurrency", 0, "throughput: runs in flight per lane per daemon (default max(sessions, 16))")
	f.IntVar(&o.Lines, "lines", 0, "stream: lines the chatty run logs (default 200000, quick 5000)")
	f.IntVar(&o.Events, "events", 0, "stream: raw events through the writer, direct store (default 400000, quick 20000)")
	f.IntVar(&o.RESTEvents, "rest-events", 0, "stream: raw events through the writer, REST store (default 100000, quick 5000)")
	f.IntVar(&o.InFlight, "in-flight", 0, "footprint: runs in flight (default 1000, quick 100)")
	f.StringVar(&o.Binary, "binary", "", "footprint: the opsd binary to run (default this executable)")
	f.IntVar(&o.BaselineSamples, "baseline-samples", 0, "baseline: pickup samples (default 60, quick 4; each waits for an 800 ms poll)")
	f.DurationVar(&o.BaselineDuration, "baseline-duration", 0, "baseline: throughput window (default 10s, quick 2s)")
	f.IntVar(&o.BaselineEvents, "baseline-events", 0, "baseline: events inserted one by one per store (default 5000, quick 300)")
	f.StringVar(&o.ProfileDir, "cpuprofile-dir", "", "write a CPU profile per scenario to this directory (<scenario>.pprof)")
	f.StringVar(&restURL, "supabase-url", "", "REST paths: URL of a real PostgREST (Supabase project URL form: the API under /rest/v1) serving --database-url's database")
	f.StringVar(&serviceKey, "supabase-service-role-key", "", "REST paths: the service-role key of --supabase-url")
	f.BoolVar(&verbose, "verbose", false, "print progress to stderr")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := o.Validate(); err != nil {
			return usageErr(err)
		}
		switch {
		case restURL != "" || serviceKey != "":
			if restURL == "" || serviceKey == "" || o.DatabaseURL == "" {
				return usageErr(errors.New("--supabase-url needs --supabase-service-role-key and --database-url (the database that PostgREST serves)"))
			}
			o.PostgREST = bench.GivenPostgREST(restURL, serviceKey)
			o.RESTDatabaseURL = o.DatabaseURL
		case setup.TestServer != nil:
			o.PostgREST = setup.TestServer
		}
		if o.Binary == "" && setup.Binary != nil {
			exe, err := setup.Binary()
			if err != nil {
				return fmt.Errorf("find the opsd binary for the footprint scenario (or pass --binary): %w", err)
			}
			o.Binary = exe
		}
		if o.ProfileDir != "" {
			if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
				return usageErr(fmt.Errorf("--cpuprofile-dir: %w", err))
			}
		}
		if verbose || !o.Quick {
			o.Progress = cmd.ErrOrStderr()
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		began := time.Now()
		rep, err := bench.Run(ctx, o)
		if errors.Is(err, pgcluster.ErrNoServer) {
			return &ExitError{Code: 2, Err: fmt.Errorf("%w (or pass --database-url)", err)}
		}
		if rep == nil {
			return err
		}
		if werr := rep.WriteMarkdown(cmd.OutOrStdout()); werr != nil {
			return werr
		}
		if jsonFile != "" {
			jf, jerr := os.Create(jsonFile)
			if jerr != nil {
				return jerr
			}
			jerr = rep.WriteJSON(jf)
			if cerr := jf.Close(); jerr == nil {
				jerr = cerr
			}
			if jerr != nil {
				return fmt.Errorf("write %s: %w", jsonFile, jerr)
			}
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: done in %s\n", cmd.CommandPath(), time.Since(began).Round(time.Second))
		if err != nil {
			return err
		}
		for _, s := range rep.Scenarios {
			if s.Error != "" {
				return &ExitError{Code: 1, Err: fmt.Errorf("scenario %s failed: %s", s.Name, s.Error)}
			}
		}
		return nil
	}
	return cmd
}
