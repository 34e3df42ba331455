package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
)

func newScheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Run runbooks on a schedule: add, list, pause, resume, rm",
		Long: `Schedules live in public.run_schedules (the frontend may edit them through
PostgREST too). Every daemon enqueues due schedules; a tick becomes an
ordinary queued run with schedule_id and scheduled_for set, and a unique
index makes sure two daemons never enqueue the same tick. Ticks missed while
no daemon ran are enqueued once on recovery, with a System event saying how
many were skipped.

--cron takes standard 5-field cron (minute hour day-of-month month
day-of-week: numbers, ranges 1-5, steps */15, lists 1,15, names jan-dec and
sun-sat), the macros @hourly @daily @weekly @monthly @yearly, or
@every <duration> (at least 1s, e.g. @every 30s, @every 1h30m). The database
validates it on every write and says which field is wrong and where.`,
		Example: `  opsd schedule add nightly-health --cron "0 3 * * *" --kind healthcheck --env prod --input target=web
  opsd schedule add staging-deploy --cron "@every 6h" --kind deploy --env staging --template vercel-deploy --input project=web --lane B
  opsd schedule list
  opsd schedule pause nightly-health
  opsd schedule rm nightly-health`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErr(fmt.Errorf("give a subcommand (see %s --help)", cmd.CommandPath()))
		},
	}
	cmd.AddCommand(newScheduleAddCmd(), newScheduleListCmd(),
		newScheduleToggleCmd("pause", false), newScheduleToggleCmd("resume", true), newScheduleRmCmd())
	return cmd
}

func newScheduleAddCmd() *cobra.Command {
	var f submitFlags
	var cron, tz, overlap, as string
	var paused bool
	cmd := &cobra.Command{
		Use:   "add NAME --cron EXPR --kind KIND --env ENV [flags]",
		Short: "Create a schedule",
		Long: `add creates a schedule named NAME (letters, digits, '.', '_', '-'). Its runs
get the kind, env, lane, template and inputs given here, checked as "opsd
submit" checks them. The first fire time is printed.

--overlap says what a tick does while the schedule's previous run is still
queued or running: skip (the default: no pile-up; the skip is audited) or
queue (queue another run anyway).`,
		Example: `  opsd schedule add nightly-health --cron "0 3 * * *" --kind healthcheck --env prod
  opsd schedule add every-5m --cron "*/5 * * * *" --timezone Europe/Paris --kind spec --env dev --input notes=hi
  opsd schedule add tick --cron "@every 30s" --kind healthcheck --env dev --overlap queue`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}
	loader := withConfig(cmd)
	fs := cmd.Flags()
	fs.StringVar(&cron, "cron", "", `when to run: 5-field cron ("0 3 * * *"), @daily and friends, or "@every 10m" (required)`)
	fs.StringVar(&tz, "timezone", "UTC", "time zone the cron fields are read in, e.g. Europe/Paris")
	fs.StringVar(&overlap, "overlap", "skip", "while the previous run is queued or running: skip or queue")
	fs.BoolVar(&paused, "paused", false, "create the schedule paused (resume it later)")
	fs.StringVar(&as, "as", "", "operator recorded in the audit trail (default $USER@host)")
	fs.StringVar(&f.kind, "kind", "", "run kind: "+strings.Join(runKinds, ", ")+" (required)")
	fs.StringVar(&f.env, "env", "", "environment: "+strings.Join(runEnvs, ", ")+" (required)")
	fs.StringVar(&f.lane, "lane", "A", "lane of the runs")
	fs.StringVar(&f.session, "session", "", "session id (UUID) of the runs")
	fs.StringArrayVar(&f.inputs, "input", nil, "run input KEY=VALUE, repeatable")
	fs.StringVar(&f.template, "template", "", "run the run_templates row with this slug (or id)")
	flagErrorsAreUsage(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if strings.TrimSpace(cron) == "" {
			return usageErr(fmt.Errorf(`--cron is required, e.g. --cron "0 3 * * *" or --cron "@every 10m"`))
		}
		if !slices.Contains([]string{"skip", "queue"}, overlap) {
			return usageErr(fmt.Errorf("--overlap %q: must be skip or queue", overlap))
		}
		return withOps(cmd, loader, func(ctx context.Context, e *env, s cliStore, ops executor.Operations) error {
			nr, err := f.newRun(ctx, cmd, e, s)
			if err != nil {
				return err
			}
			enabled := !paused
			sc := executor.Schedule{Name: args[0], Cron: cron, Timezone: tz, Env: nr.Env, Kind: nr.Kind, TemplateID: nr.TemplateID,
				Input: nr.Input, Lane: nr.Lane, SessionID: nr.SessionID, Enabled: &enabled, Overlap: overlap}
			saved, err := ops.SaveSchedule(ctx, sc, actorOr(as))
			switch {
			case errors.Is(err, executor.ErrConflict):
				return usageErr(fmt.Errorf("schedule add %s: a schedule with this name exists (opsd schedule rm %s first)", args[0], args[0]))
			case errors.Is(err, executor.ErrInvalidInput):
				return usageErr(fmt.Errorf("schedule add %s: %w", args[0], err))
			case err != nil:
				return fmt.Errorf("schedule add %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added schedule %s (%s), next run %s\n", saved.Name, saved.Cron, nextRun(saved))
			return nil
		})
	}
	return cmd
}

func nextRun(s *executor.Schedule) string {
	switch {
	case s.Enabled != nil && !*s.Enabled:
		return "paused"
	case s.NextRunAt == nil:
		return "-"
	}
	return s.NextRunAt.Local().Format(time.RFC3339)
}

func actorOr(as string) string {
	if as != "" {
		return as
	}
	return defaultApprover()
}

func newScheduleListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List schedules with their next fire time",
		Example: `  opsd schedule list`,
		Args:    usageArgs(cobra.NoArgs),
	}
	loader := withConfig(cmd)
	flagErrorsAreUsage(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return withOps(cmd, loader, func(ctx context.Context, e *env, s cliStore, ops executor.Operations) error {
			list, err := ops.ListSchedules(ctx)
			if err != nil {
				return fmt.Errorf("list schedules: %w", err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tCRON\tTIMEZONE\tKIND\tENV\tLANE\tOVERLAP\tNEXT RUN\tLAST RUN")
			for i := range list {
				sc := &list[i]
				last := "-"
				if sc.LastRunAt != nil {
					last = sc.LastRunAt.Local().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sc.Name, sc.Cron, sc.Timezone, sc.Kind, sc.Env, sc.Lane,
					sc.Overlap, nextRun(sc), last)
			}
			return w.Flush()
		})
	}
	return cmd
}

func newScheduleToggleCmd(verb string, enabled bool) *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:     verb + " NAME...",
		Short:   map[bool]string{false: "Pause schedules (no runs until resumed)", true: "Resume paused schedules from now (missed ticks are not caught up)"}[enabled],
		Example: fmt.Sprintf("  opsd schedule %s nightly-health", verb),
		Args:    usageArgs(cobra.MinimumNArgs(1)),
	}
	loader := withConfig(cmd)
	cmd.Flags().StringVar(&as, "as", "", "operator recorded in the audit trail (default $USER@host)")
	flagErrorsAreUsage(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return withOps(cmd, loader, func(ctx context.Context, e *env, s cliStore, ops executor.Operations) error {
			failed := 0
			for _, name := range args {
				sc, err := ops.SetScheduleEnabled(ctx, name, enabled, actorOr(as))
				if err != nil {
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "opsd: schedule %s %s: %v\n", verb, name, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%sd schedule %s, next run %s\n", verb, name, nextRun(sc))
			}
			if failed > 0 {
				return &ExitError{Code: 1}
			}
			return nil
		})
	}
	return cmd
}

func newScheduleRmCmd() *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove", "delete"},
		Short:   "Delete schedules (their runs stay, with schedule_id cleared)",
		Example: `  opsd schedule rm nightly-health`,
		Args:    usageArgs(cobra.MinimumNArgs(1)),
	}
	loader := withConfig(cmd)
	cmd.Flags().StringVar(&as, "as", "", "operator recorded in the audit trail (default $USER@host)")
	flagErrorsAreUsage(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return withOps(cmd, loader, func(ctx context.Context, e *env, s cliStore, ops executor.Operations) error {
			failed := 0
			for _, name := range args {
				if err := ops.DeleteSchedule(ctx, name, actorOr(as)); err != nil {
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "opsd: schedule rm %s: %v\n", name, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed schedule %s\n", name)
			}
			if failed > 0 {
				return &ExitError{Code: 1}
			}
			return nil
		})
	}
	return cmd
}
