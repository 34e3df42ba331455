// Package cli is opsd's command line: the daemon (run, dev), the schema
// (migrate), and the operator commands (submit, tail, cancel, approve,
// status, doctor, bench, version).
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=v1.2.3".
var Version = "dev"

// Commit is the git commit, set at build time like Version.
var Commit = "unknown"

// ExitError carries a process exit code through cobra.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// NewRoot builds the opsd command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "opsd",
		Short: "opsd executes Ops Control Room runbooks against Vercel, GitHub, DigitalOcean and Supabase",
		Long: `opsd is the executor of the Ops Control Room. It claims runs that the UI
queues in Supabase (public.runs), runs their five phases (validate, preflight,
action, verify, summarize) against the real integrations, and writes the events
and artifacts that Supabase Realtime streams back to the browser.

Start here:
  opsd dev --demo                 a local PostgreSQL, the daemon and a few demo runs
  opsd migrate --database-url URL bring a database to the schema this binary needs
  opsd run                        the daemon (DATABASE_URL, or SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY)
  opsd submit --kind deploy --env staging --input repo=acme/web --follow
  opsd doctor                     check configuration, database, permissions and integrations`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// A bad flag is a usage error (exit 2), whichever command it belongs to.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &ExitError{Code: 2, Err: fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.AddCommand(newRunCmd(), newMigrateCmd(), newVersionCmd(), newDevCmd(), newSubmitCmd(), newTailCmd(), newCancelCmd(), newApproveCmd(), newRejectCmd(), newApproversCmd(), newStatusCmd(), newDoctorCmd(), newBenchCmd())
	root.AddCommand(newScheduleCmd(), newRetryCmd(), newPruneCmd(), newAuditCmd())
	return root
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	return Execute(ctx, NewRoot(), args)
}

// Execute runs root with args and returns the process exit code: an
// ExitError's code, 1 for any other error.
func Execute(ctx context.Context, root *cobra.Command, args []string) int {
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(os.Stderr, root.Name()+":", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(os.Stderr, root.Name()+":", err)
	return 1
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the schema version this binary needs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "opsd %s (commit %s, schema %s)\n", Version, Commit, schemaVersion())
			return nil
		},
	}
}
