package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
)

// aliveFor is how old a heartbeat may be before the UI shows the run as
// dead (CONTRACT.md); status flags older ones.
const aliveFor = 10 * time.Second

// statusReport is what `opsd status` shows; its JSON is the --json output.
type statusReport struct {
	Lanes          []executor.LaneCount `json:"lanes"`
	InFlight       []inFlightRun        `json:"in_flight"`
	RecentFailures []failedRun          `json:"recent_failures"`
}

type inFlightRun struct {
	ID           string     `json:"id"`
	Lane         string     `json:"lane"`
	Kind         string     `json:"kind"`
	Env          string     `json:"env"`
	Worker       string     `json:"worker"`
	Phase        string     `json:"phase"`
	StartedAt    *time.Time `json:"started_at"`
	HeartbeatAt  *time.Time `json:"heartbeat_at"`
	HeartbeatAge *float64   `json:"heartbeat_age_seconds"`
}

type failedRun struct {
	ID           string     `json:"id"`
	Kind         string     `json:"kind"`
	Env          string     `json:"env"`
	Lane         string     `json:"lane"`
	FinishedAt   *time.Time `json:"finished_at"`
	ErrorMessage string     `json:"error_message"`
}

func newStatusCmd() *cobra.Command {
	var (
		asJSON   bool
		failures int
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show queued and running runs per lane, runs in flight, and recent failures",
		Long: `status reads the queue: per lane the number of queued and running runs (the
configured lanes are always listed), every running run with the worker that
holds it, its phase and the age of its last heartbeat (the UI calls a run
dead after 10s without one), and the newest failed runs with their
error_message.`,
		Example: `  opsd status
  opsd status --json | jq '.in_flight[] | select(.heartbeat_age_seconds > 10)'
  watch -n2 opsd status`,
		Args: usageArgs(cobra.NoArgs),
	}
	flagErrorsAreUsage(cmd)
	loader := withConfig(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	cmd.Flags().IntVar(&failures, "failures", 10, "how many recent failures to list")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return withStore(cmd, loader, func(ctx context.Context, e *env, s cliStore) error {
			rep, err := readStatus(ctx, s, e.cfg.Lanes, failures, time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			rep.print(cmd.OutOrStdout())
			return nil
		})
	}
	return cmd
}

func readStatus(ctx context.Context, s executor.OperatorStore, lanes []string, failures int, now time.Time) (*statusReport, error) {
	counts, err := s.LaneCounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("lane counts: %w", err)
	}
	rep := &statusReport{Lanes: withAllLanes(counts, lanes), InFlight: []inFlightRun{}, RecentFailures: []failedRun{}}
	running, err := s.ListRuns(ctx, executor.RunFilter{Statuses: []string{executor.StatusRunning}, Limit: 500})
	if err != nil {
		return nil, fmt.Errorf("list running runs: %w", err)
	}
	for _, r := range running {
		f := inFlightRun{ID: r.ID, Lane: r.Lane, Kind: r.Kind, Env: r.Env, Worker: deref(r.ClaimedBy),
			Phase: deref(r.Phase), StartedAt: r.StartedAt, HeartbeatAt: r.HeartbeatAt}
		if r.HeartbeatAt != nil {
			age := now.Sub(*r.HeartbeatAt).Seconds()
			f.HeartbeatAge = &age
		}
		rep.InFlight = append(rep.InFlight, f)
	}
	if failures > 0 {
		failed, err := s.ListRuns(ctx, executor.RunFilter{Statuses: []string{executor.StatusError}, Limit: failures})
		if err != nil {
			return nil, fmt.Errorf("list failed runs: %w", err)
		}
		for _, r := range failed {
			rep.RecentFailures = append(rep.RecentFailures, failedRun{ID: r.ID, Kind: r.Kind, Env: r.Env, Lane: r.Lane,
				FinishedAt: r.FinishedAt, ErrorMessage: deref(r.ErrorMessage)})
		}
	}
	return rep, nil
}

// withAllLanes adds the configured lanes that have nothing queued or running.
func withAllLanes(counts []executor.LaneCount, lanes []string) []executor.LaneCount {
	seen := map[string]bool{}
	out := append([]executor.LaneCount{}, counts...)
	for _, c := range counts {
		seen[c.Lane] = true
	}
	for _, l := range lanes {
		if !seen[l] {
			out = append(out, executor.LaneCount{Lane: l})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Lane < out[j].Lane })
	return out
}

func (rep *statusReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LANE\tQUEUED\tRUNNING")
	for _, l := range rep.Lanes {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", l.Lane, l.Queued, l.Running)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nIN FLIGHT (%d)\n", len(rep.InFlight))
	if len(rep.InFlight) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tLANE\tKIND\tENV\tWORKER\tPHASE\tHEARTBEAT")
		for _, r := range rep.InFlight {
			hb := "never"
			if r.HeartbeatAge != nil {
				age := time.Duration(*r.HeartbeatAge * float64(time.Second))
				hb = age.Round(100*time.Millisecond).String() + " ago"
				if age > aliveFor {
					hb += " (stale: the UI shows it as dead)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Lane, r.Kind, r.Env, orDash(r.Worker), orDash(r.Phase), hb)
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nRECENT FAILURES (%d)\n", len(rep.RecentFailures))
	if len(rep.RecentFailures) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tFINISHED\tKIND\tENV\tERROR")
		for _, r := range rep.RecentFailures {
			fin := "-"
			if r.FinishedAt != nil {
				fin = r.FinishedAt.Local().Format("2006-01-02 15:04:05")
			}
			// One line per run, whatever the message holds.
			msg := strings.Join(strings.Fields(r.ErrorMessage), " ")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, fin, r.Kind, r.Env, orDash(msg))
		}
		tw.Flush()
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
