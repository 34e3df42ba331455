package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
)

func newAuditCmd() *cobra.Command {
	var since time.Duration
	var until, runID, format string
	cmd := &cobra.Command{
		Use:   "audit [--since DURATION] [--until TIME] [--run ID] [--format table|jsonl|csv]",
		Short: "List who did what: runs created, canceled, approved, rejected, retried; schedules changed",
		Long: `audit lists public.audit_log, oldest first. The database writes it from
triggers and SQL functions, whoever acted (the UI through PostgREST, the CLI,
the daemon), and nobody may change it. Actions: created, scheduled, retried,
approved, rejected, canceled, schedule.created, schedule.changed,
schedule.paused, schedule.resumed, schedule.deleted, schedule.skipped. The
actor is the user's id for the UI, the --as name for the CLI, and
schedule:<name> for runs a schedule made.

--format jsonl prints one JSON object per line with at, action, actor,
run_id and details; csv has the columns at,action,actor,run_id,details.`,
		Example: `  opsd audit --since 24h
  opsd audit --run 3f1c2a9e-8d8b-4c55-9a57-0b1e6f3b2d11
  opsd audit --since 720h --format csv > audit.csv
  opsd audit --until 2026-12-01T00:00:00Z --format jsonl | jq 'select(.action == "approved")'`,
		Args: usageArgs(cobra.NoArgs),
	}
	loader := withConfig(cmd)
	fs := cmd.Flags()
	fs.DurationVar(&since, "since", 0, "only entries newer than this, e.g. 24h (default: all)")
	fs.StringVar(&until, "until", "", "only entries up to this time (RFC 3339, e.g. 2026-12-01T00:00:00Z)")
	fs.StringVar(&runID, "run", "", "only entries of this run id")
	fs.StringVar(&format, "format", "table", "table, jsonl or csv")
	flagErrorsAreUsage(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		q := executor.AuditQuery{RunID: runID}
		if since < 0 {
			return usageErr(fmt.Errorf("--since %s: must be positive", since))
		}
		if since > 0 {
			q.Since = time.Now().Add(-since)
		}
		if until != "" {
			t, err := time.Parse(time.RFC3339, until)
			if err != nil {
				return usageErr(fmt.Errorf("--until %q: want an RFC 3339 time such as 2026-12-01T00:00:00Z", until))
			}
			q.Until = t
		}
		if runID != "" {
			if err := checkRunIDs([]string{runID}); err != nil {
				return err
			}
		}
		switch format {
		case "table", "jsonl", "csv":
		default:
			return usageErr(fmt.Errorf("--format %q: must be table, jsonl or csv", format))
		}
		return withOps(cmd, loader, func(ctx context.Context, e *env, s cliStore, ops executor.Operations) error {
			entries, err := ops.Audit(ctx, q)
			if err != nil {
				return fmt.Errorf("audit: %w", err)
			}
			return writeAudit(cmd, format, entries)
		})
	}
	return cmd
}

// auditLine is one jsonl line.
type auditLine struct {
	At         time.Time       `json:"at"`
	Action     string          `json:"action"`
	Actor      string          `json:"actor"`
	RunID      *string         `json:"run_id"`
	ScheduleID *string         `json:"schedule_id,omitempty"`
	Details    json.RawMessage `json:"details,omitempty"`
}

func writeAudit(cmd *cobra.Command, format string, entries []executor.AuditEntry) error {
	out := cmd.OutOrStdout()
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	switch format {
	case "jsonl":
		enc := json.NewEncoder(out)
		for _, a := range entries {
			if err := enc.Encode(auditLine{At: a.At.UTC(), Action: a.Action, Actor: a.Actor, RunID: a.RunID,
				ScheduleID: a.ScheduleID, Details: a.Details}); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		w := csv.NewWriter(out)
		_ = w.Write([]string{"at", "action", "actor", "run_id", "details"})
		for _, a := range entries {
			_ = w.Write([]string{a.At.UTC().Format(time.RFC3339Nano), a.Action, a.Actor, str(a.RunID), string(a.Details)})
		}
		w.Flush()
		return w.Error()
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "AT\tACTION\tACTOR\tRUN\tDETAILS")
	for _, a := range entries {
		run := str(a.RunID)
		if run == "" {
			run = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.At.Local().Format(time.RFC3339), a.Action, a.Actor, run,
			strings.TrimSpace(string(a.Details)))
	}
	return w.Flush()
}
