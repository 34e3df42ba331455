package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
)

func newPruneCmd() *cobra.Command {
	var dry bool
	cmd := &cobra.Command{
		Use:   "prune [--dry-run]",
		Short: "Delete finished runs' rows and audit entries past the retention ages, once, and say what went",
		Long: `prune does one retention pass with the ages of the retention: section
(retention.run_events, run_steps, artifacts, runs, audit_log; e.g. 30d,
365d): in batches of retention.batch rows per table, pausing between
batches, until nothing is left. Only finished runs are touched, never queued
or running ones; a run past its age goes with all of its rows. Audit trail
entries (public.audit_log) go by retention.audit_log alone, whatever became
of their run; unset, the audit trail is kept forever. The daemon does the
same every retention.interval; a pass holds a lease, so two never work at
once.

--dry-run counts what a pass would delete and deletes nothing.`,
		Example: `  opsd prune --dry-run
  OPSD_RETENTION_RUN_EVENTS=30d OPSD_RETENTION_RUNS=365d opsd prune
  OPSD_RETENTION_AUDIT_LOG=730d opsd prune --dry-run
  opsd prune --config /etc/opsd/opsd.yaml`,
		Args: usageArgs(cobra.NoArgs),
	}
	loader := withConfig(cmd)
	cmd.Flags().BoolVar(&dry, "dry-run", false, "count what would be deleted; delete nothing")
	flagErrorsAreUsage(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return withOps(cmd, loader, func(ctx context.Context, e *env, s cliStore, ops executor.Operations) error {
			mc := maintenanceConfig(e)
			if !mc.Retention.Enabled() {
				fmt.Fprintln(cmd.ErrOrStderr(), "opsd: no retention ages are set (retention.run_events, run_steps, artifacts, runs, audit_log): everything is kept")
			}
			req := executor.PruneRequest{Worker: e.cfg.WorkerID, Retention: mc.Retention, Batch: mc.PruneBatch, DryRun: dry}
			res, err := executor.PrunePass(ctx, ops, req, 200*time.Millisecond, nil)
			if err != nil {
				return fmt.Errorf("prune: %w", err)
			}
			if res.Busy != "" {
				return &ExitError{Code: 1, Err: fmt.Errorf("prune: %s is pruning now; try again in a minute", res.Busy)}
			}
			verb := "deleted"
			if dry {
				verb = "would delete"
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "TABLE\t%s\n", verb)
			for _, tc := range res.Tables() {
				fmt.Fprintf(w, "%s\t%d\n", tc.Table, tc.Rows)
			}
			return w.Flush()
		})
	}
	return cmd
}
