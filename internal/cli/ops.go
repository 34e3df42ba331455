package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/config"
)

// storeOpenTimeout bounds connecting to the store, so a command against an
// unreachable database fails instead of hanging.
const storeOpenTimeout = 15 * time.Second

// withStore loads the configuration, opens the store it selects and runs fn;
// the store is closed when fn returns.
func withStore(cmd *cobra.Command, l *config.Loader, fn func(ctx context.Context, e *env, s cliStore) error) error {
	e, err := loadEnv(cmd, l)
	if err != nil {
		return err
	}
	defer e.log.Sync() //nolint:errcheck
	ctx := cmd.Context()
	octx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
	s, err := openStore(octx, e)
	cancel()
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(ctx, e, s)
}

// usageErr marks err as a usage error: exit code 2.
func usageErr(err error) error { return &ExitError{Code: 2, Err: err} }

// usageArgs makes an argument check's failure a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageErr(err)
		}
		return nil
	}
}

// flagErrorsAreUsage makes cmd's flag parse errors usage errors.
func flagErrorsAreUsage(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// checkRunIDs rejects arguments that cannot be run ids before any store call.
func checkRunIDs(ids []string) error {
	for _, id := range ids {
		if !uuidPattern.MatchString(id) {
			return usageErr(fmt.Errorf("%q is not a run id (a UUID such as 3f1c2a9e-8d8b-4c55-9a57-0b1e6f3b2d11)", id))
		}
	}
	return nil
}

func newCancelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel RUN_ID...",
		Short: "Cancel queued or running runs, as the UI's cancel button does",
		Long: `cancel calls cancel_run for each run. A queued run is canceled at once; a
running one is marked canceled and its daemon stops it at its next heartbeat
(within a few seconds), writing a final event.

Exit codes: 0 every run was canceled, 1 one was not (not found, or already
finished), 2 usage or configuration error.`,
		Example: `  opsd cancel 3f1c2a9e-8d8b-4c55-9a57-0b1e6f3b2d11
  opsd cancel $RUN_A $RUN_B`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
	}
	flagErrorsAreUsage(cmd)
	loader := withConfig(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRunIDs(args); err != nil {
			return err
		}
		return withStore(cmd, loader, func(ctx context.Context, e *env, s cliStore) error {
			return forEachRun(ctx, cmd, s, args, "cancel", func(id string) (bool, error) { return s.CancelRun(ctx, id) },
				func(id string) string { return "canceled run " + id })
		})
	}
	return cmd
}

func newApproveCmd() *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:   "approve RUN_ID...",
		Short: "Approve runs waiting before their action phase (prod deploys, blocking risks)",
		Long: `approve calls approve_run for each run, recording "operator:" + --as as
approved_by. A run that needs approval (one whose action reaches a production
target, or a plan with a "block" risk) waits in phase "approval" before its
action phase; its daemon sees the approval at its next heartbeat, writes a
System event naming the approver, and goes on. A queued run may be approved
ahead of time. From the UI only listed approvers (opsd approvers) may
approve, never a run they created.

Exit codes: 0 every run was approved, 1 one was not (not found, finished, or
already approved), 2 usage or configuration error.`,
		Example: `  opsd approve 3f1c2a9e-8d8b-4c55-9a57-0b1e6f3b2d11
  opsd approve --as "alice (on call)" $RUN_ID`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
	}
	flagErrorsAreUsage(cmd)
	loader := withConfig(cmd)
	cmd.Flags().StringVar(&as, "as", "", "operator recorded in runs.approved_by as operator:NAME (default $USER@host)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRunIDs(args); err != nil {
			return err
		}
		if as == "" {
			as = defaultApprover()
		}
		return withStore(cmd, loader, func(ctx context.Context, e *env, s cliStore) error {
			return forEachRun(ctx, cmd, s, args, "approve", func(id string) (bool, error) { return s.ApproveRun(ctx, id, as) },
				func(id string) string { return fmt.Sprintf("approved run %s as %s", id, as) })
		})
	}
	return cmd
}

// defaultApprover is $USER@host.
func defaultApprover() string {
	name := os.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return name + "@" + host
}

// forEachRun applies op to each run, printing what happened, and fails
// (exit 1) when op refused any of them, saying why.
func forEachRun(ctx context.Context, cmd *cobra.Command, s executor.OperatorStore, ids []string, verb string,
	op func(id string) (bool, error), done func(id string) string) error {
	failed := 0
	for _, id := range ids {
		ok, err := op(id)
		if err == nil && ok {
			fmt.Fprintln(cmd.OutOrStdout(), done(id))
			continue
		}
		if err == nil {
			err = whyRefused(ctx, s, id, verb)
		}
		failed++
		fmt.Fprintf(cmd.ErrOrStderr(), "opsd: %s %s: %v\n", verb, id, err)
	}
	if failed > 0 {
		return &ExitError{Code: 1}
	}
	return nil
}

// whyRefused explains why cancel_run or approve_run answered false.
func whyRefused(ctx context.Context, s executor.OperatorStore, id, verb string) error {
	run, err := s.GetRun(ctx, id)
	switch {
	case errors.Is(err, executor.ErrNotFound):
		return errors.New("no such run")
	case err != nil:
		return fmt.Errorf("refused, and reading the run failed: %w", err)
	case run.Terminal():
		return fmt.Errorf("the run already finished (%s)", run.Status)
	case (verb == "approve" || verb == "reject") && run.ApprovedAt != nil:
		by := "someone"
		if run.ApprovedBy != nil {
			by = *run.ApprovedBy
		}
		return fmt.Errorf("already approved by %s at %s", by, run.ApprovedAt.Local().Format(time.RFC3339))
	default:
		return fmt.Errorf("refused while the run is %s", run.Status)
	}
}
