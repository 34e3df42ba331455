package cli

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/config"
)

func newRejectCmd() *cobra.Command {
	var as, reason string
	cmd := &cobra.Command{
		Use:   "reject RUN_ID... --reason TEXT",
		Short: "Refuse runs waiting for approval: they end canceled, with the reason",
		Long: `reject calls reject_run for each run: a run waiting for approval (or still
queued) ends canceled, with error_message "rejected by operator:NAME: REASON"
and the rejection recorded in runs.rejected_by and rejected_at. Its daemon
sees the cancel at its next heartbeat, before any action. A run already
approved cannot be rejected (cancel it instead).

Exit codes: 0 every run was rejected, 1 one was not, 2 usage or configuration error.`,
		Example: `  opsd reject $RUN_ID --reason "freeze until Monday"
  opsd reject --as "alice (on call)" --reason "wrong branch" $RUN_ID`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
	}
	flagErrorsAreUsage(cmd)
	loader := withConfig(cmd)
	cmd.Flags().StringVar(&as, "as", "", "operator recorded in runs.rejected_by as operator:NAME (default $USER@host)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the runs are rejected (required; shown in the UI)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRunIDs(args); err != nil {
			return err
		}
		if strings.TrimSpace(reason) == "" {
			return usageErr(errors.New("--reason is required: say why the run is rejected"))
		}
		if as == "" {
			as = defaultApprover()
		}
		return withStore(cmd, loader, func(ctx context.Context, e *env, s cliStore) error {
			return forEachRun(ctx, cmd, s, args, "reject", func(id string) (bool, error) { return s.RejectRun(ctx, id, as, reason) },
				func(id string) string { return fmt.Sprintf("rejected run %s as operator:%s: %s", id, as, reason) })
		})
	}
	return cmd
}

var userIDPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func newApproversCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approvers",
		Short: "Manage who may approve runs from the UI (public.approvers)",
		Long: `approvers manages the public.approvers table: the signed-in Supabase users
(by auth user id) who may approve and reject runs through approve_run and
reject_run. Nobody approves a run they created (four-eyes rule); the anon key
approves nothing. Operators approve from the CLI with opsd approve --as NAME,
recorded as operator:NAME.`,
		Example: `  opsd approvers add 5b0c2f3e-8a61-4d7e-9f43-2a1c6b7d8e90 --name "Alice (SRE)"
  opsd approvers list
  opsd approvers rm 5b0c2f3e-8a61-4d7e-9f43-2a1c6b7d8e90`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr(errors.New("name a subcommand: add, list or rm"))
		},
	}
	cmd.AddCommand(newApproversAddCmd(), newApproversListCmd(), newApproversRmCmd())
	return cmd
}

// withApprovers runs fn with the store's approvers list.
func withApprovers(cmd *cobra.Command, loader *config.Loader, fn func(ctx context.Context, a executor.ApproverStore) error) error {
	return withStore(cmd, loader, func(ctx context.Context, _ *env, s cliStore) error {
		a, ok := s.(executor.ApproverStore)
		if !ok {
			return fmt.Errorf("this store cannot manage approvers")
		}
		return fn(ctx, a)
	})
}

func checkUserID(id string) error {
	if !userIDPattern.MatchString(id) {
		return usageErr(fmt.Errorf("user id %q is not a UUID: give the user's auth.users id (Supabase dashboard, Authentication, Users)", id))
	}
	return nil
}

func newApproversAddCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:     "add USER_ID [--name TEXT]",
		Short:   "Let a signed-in user approve and reject runs they did not create",
		Example: `  opsd approvers add 5b0c2f3e-8a61-4d7e-9f43-2a1c6b7d8e90 --name "Alice (SRE)"`,
		Args:    usageArgs(cobra.ExactArgs(1)),
	}
	flagErrorsAreUsage(cmd)
	loader := withConfig(cmd)
	cmd.Flags().StringVar(&name, "name", "", "a label for the list (who this is)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkUserID(args[0]); err != nil {
			return err
		}
		return withApprovers(cmd, loader, func(ctx context.Context, a executor.ApproverStore) error {
			if err := a.AddApprover(ctx, strings.ToLower(args[0]), name); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approver %s added\n", strings.ToLower(args[0]))
			return nil
		})
	}
	return cmd
}

func newApproversListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List approvers, oldest first",
		Args:  usageArgs(cobra.NoArgs),
	}
	flagErrorsAreUsage(cmd)
	loader := withConfig(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return withApprovers(cmd, loader, func(ctx context.Context, a executor.ApproverStore) error {
			list, err := a.ListApprovers(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "USER_ID\tNAME\tADDED_BY\tADDED_AT")
			for _, x := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.UserID, x.Name, x.AddedBy, x.AddedAt.Local().Format(time.RFC3339))
			}
			return tw.Flush()
		})
	}
	return cmd
}

func newApproversRmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rm USER_ID",
		Short:   "Take a user off the approvers list",
		Example: `  opsd approvers rm 5b0c2f3e-8a61-4d7e-9f43-2a1c6b7d8e90`,
		Args:    usageArgs(cobra.ExactArgs(1)),
	}
	flagErrorsAreUsage(cmd)
	loader := withConfig(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkUserID(args[0]); err != nil {
			return err
		}
		return withApprovers(cmd, loader, func(ctx context.Context, a executor.ApproverStore) error {
			ok, err := a.RemoveApprover(ctx, strings.ToLower(args[0]))
			if err != nil {
				return err
			}
			if !ok {
				fmt.Fprintf(cmd.ErrOrStderr(), "opsd: approvers rm: %s is not an approver\n", args[0])
				return &ExitError{Code: 1}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approver %s removed\n", strings.ToLower(args[0]))
			return nil
		})
	}
	return cmd
}
