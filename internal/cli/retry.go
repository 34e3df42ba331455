package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
)

func newRetryCmd() *cobra.Command {
	var as string
	var follow bool
	var wait time.Duration
	var tf tailFlags
	cmd := &cobra.Command{
		Use:   "retry RUN_ID",
		Short: "Queue a new run like one that ended error or canceled (the UI's retry button)",
		Long: `retry calls retry_run: a new queued run with the same env, kind, plan, input,
template, session and lane, whose retry_of points at the original. Only runs
that ended error or canceled can be retried; whoever may cancel a run may
retry it, one retry at a time. Approval is asked again where the policy asks
for it (a prod deploy, a blocking risk). A run canceled while running ends
once its daemon has stopped it (within seconds): retry waits up to --wait for
that. The new run's id is printed; --as is recorded in the audit trail.

Exit codes: 0 queued (with --follow: the new run succeeded), 1 refused or
failed, 2 usage or configuration error, 3 (with --follow) the run was canceled.`,
		Example: `  opsd retry 3f1c2a9e-8d8b-4c55-9a57-0b1e6f3b2d11
  opsd retry --follow $RUN_ID
  opsd retry --as "alice (on call)" $RUN_ID`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}
	loader := withConfig(cmd)
	cmd.Flags().StringVar(&as, "as", "", "operator recorded in the audit trail (default $USER@host)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the new run's events until it finishes and exit with its outcome")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for a canceled run that is still stopping")
	tf.register(cmd.Flags())
	flagErrorsAreUsage(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRunIDs(args); err != nil {
			return err
		}
		if err := tf.check(); err != nil {
			return err
		}
		if wait < 0 {
			return usageErr(fmt.Errorf("--wait %s: must not be negative", wait))
		}
		return withOps(cmd, loader, func(ctx context.Context, e *env, s cliStore, ops executor.Operations) error {
			if err := waitStopped(ctx, s, args[0], wait, tf.interval, cmd.ErrOrStderr()); err != nil {
				return err
			}
			id, err := ops.RetryRun(ctx, args[0], actorOr(as))
			switch {
			case errors.Is(err, executor.ErrNotFound):
				return &ExitError{Code: 1, Err: fmt.Errorf("retry %s: no such run", args[0])}
			case err != nil:
				return &ExitError{Code: 1, Err: fmt.Errorf("retry %s: %w", args[0], err)}
			}
			r := tf.renderer(cmd.OutOrStdout())
			if tf.json {
				run, err := s.GetRun(ctx, id)
				if err != nil {
					return fmt.Errorf("read the new run %s: %w", id, err)
				}
				r.jsonLine("submitted", run)
			} else {
				fmt.Fprintln(r.w, id)
			}
			if !follow {
				return nil
			}
			fl := &follower{store: s, interval: tf.interval, out: r}
			done, err := fl.follow(ctx, id)
			if err != nil {
				return err
			}
			return runOutcome(done)
		})
	}
	return cmd
}

// waitStopped waits up to limit for a run that was canceled while running
// to finish (its daemon stops it within seconds), so it can be retried. A
// run that cannot be read is left for retry_run to report.
func waitStopped(ctx context.Context, s cliStore, id string, limit, every time.Duration, status io.Writer) error {
	deadline := time.Now().Add(limit)
	said := false
	for {
		run, err := s.GetRun(ctx, id)
		if err != nil || run.Status != executor.StatusCanceled || run.FinishedAt != nil || !time.Now().Before(deadline) {
			return nil
		}
		if !said {
			fmt.Fprintf(status, "run %s was canceled and is still stopping; waiting up to %s\n", id, limit)
			said = true
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
