package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/runbooks"
)

// The values the runs table's CHECKs accept (CONTRACT.md).
var (
	runKinds = []string{"deploy", "healthcheck", "spec", "incident", "schema_sync"}
	runEnvs  = []string{"prod", "staging", "dev"}
)

var inputKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

type submitFlags struct {
	kind, env, lane, session, template, intent string
	inputs                                     []string
	dryRun, follow                             bool
	priority                                   int
	timeout                                    time.Duration
	tail                                       tailFlags
}

func newSubmitCmd() *cobra.Command {
	var f submitFlags
	cmd := &cobra.Command{
		Use:   "submit --kind KIND --env ENV [flags]",
		Short: "Queue a run exactly as the UI does, print its id, and optionally follow it",
		Long: `submit inserts a queued run into public.runs, as the Ops Control Room UI does:
status, claim columns and created_by keep their defaults, and a daemon
claiming the lane picks it up. The kind, env and lane are checked here first
(kinds: deploy, healthcheck, spec, incident, schema_sync; envs: prod, staging,
dev; lanes: those configured with --lanes, default A,B,C,D).

--template SLUG runs a run_templates row: its id is stored in template_id and
the --input values are checked against the template's declared inputs before
anything is queued. Values are strings; the template converts numbers and
booleans. Without --template the kind's built-in runbook runs.

The run id is printed on the first line (with --json: the queued run as
{"type":"submitted",...}). With --follow submit then streams the run's events
like "opsd tail" and exits with the run's outcome.

Exit codes: 0 queued (with --follow: the run succeeded), 1 error (with
--follow: the run failed), 2 usage or configuration error, 3 (with --follow)
the run was canceled.`,
		Example: `  opsd submit --kind healthcheck --env dev --follow
  opsd submit --kind deploy --env staging --lane B --input repo=acme/web --input branch=main --intent "ship 1.4"
  opsd submit --kind deploy --env prod --template vercel-deploy --input project=web --dry-run --follow
  RUN=$(opsd submit --kind incident --env prod --session $SESSION_ID --priority 10)`,
		Args: usageArgs(cobra.NoArgs),
	}
	loader := withConfig(cmd)
	fs := cmd.Flags()
	fs.StringVar(&f.kind, "kind", "", "run kind: "+strings.Join(runKinds, ", ")+" (required)")
	fs.StringVar(&f.env, "env", "", "environment: "+strings.Join(runEnvs, ", ")+" (required)")
	fs.StringVar(&f.lane, "lane", "A", "lane; a session runs one run per lane at a time")
	fs.StringVar(&f.session, "session", "", "session id (UUID) the run belongs to; runs of one session and lane run in order")
	fs.StringArrayVar(&f.inputs, "input", nil, "run input KEY=VALUE, repeatable (stored in runs.input)")
	fs.StringVar(&f.template, "template", "", "run the run_templates row with this slug (or id)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "run validate, preflight, verify and summarize, but skip the action phase")
	fs.IntVar(&f.priority, "priority", 100, "priority within the lane; lower runs first")
	fs.StringVar(&f.intent, "intent", "", "free text shown in the UI (why this run)")
	fs.DurationVar(&f.timeout, "timeout", 0, "time limit of the whole run, e.g. 20m (default: none beyond the phase timeouts)")
	fs.BoolVarP(&f.follow, "follow", "f", false, "stream the run's events until it finishes and exit with its outcome")
	f.tail.register(fs)
	flagErrorsAreUsage(cmd)
	_ = cmd.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions(runKinds, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("env", cobra.FixedCompletions(runEnvs, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("lane", cobra.FixedCompletions([]string{"A", "B", "C", "D"}, cobra.ShellCompDirectiveNoFileComp))

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := f.tail.check(); err != nil {
			return err
		}
		return withStore(cmd, loader, func(ctx context.Context, e *env, s cliStore) error {
			nr, err := f.newRun(ctx, cmd, e, s)
			if err != nil {
				return err
			}
			run, err := s.SubmitRun(ctx, *nr)
			if err != nil {
				return fmt.Errorf("submit: %w", err)
			}
			r := f.tail.renderer(cmd.OutOrStdout())
			if f.tail.json {
				r.jsonLine("submitted", run)
			} else {
				fmt.Fprintln(r.w, run.ID)
			}
			if !f.follow {
				return nil
			}
			fl := &follower{store: s, interval: f.tail.interval, out: r}
			done, err := fl.follow(ctx, run.ID)
			if err != nil {
				return err
			}
			return runOutcome(done)
		})
	}
	return cmd
}

// newRun validates the flags and builds the run to insert. Every problem is
// a usage error (exit 2) that names the flag.
func (f *submitFlags) newRun(ctx context.Context, cmd *cobra.Command, e *env, s cliStore) (*executor.NewRun, error) {
	usage := func(format string, a ...any) error { return usageErr(fmt.Errorf(format, a...)) }
	if f.kind == "" || f.env == "" {
		return nil, usage("--kind and --env are required, e.g. --kind healthcheck --env dev")
	}
	if !slices.Contains(runKinds, f.kind) {
		return nil, usage("--kind %q: must be one of %s", f.kind, strings.Join(runKinds, ", "))
	}
	if !slices.Contains(runEnvs, f.env) {
		return nil, usage("--env %q: must be one of %s", f.env, strings.Join(runEnvs, ", "))
	}
	if !slices.Contains(e.cfg.Lanes, f.lane) {
		return nil, usage("--lane %q: not one of the configured lanes %s, so no daemon would claim it (set --lanes or OPSD_LANES if yours claim others)",
			f.lane, strings.Join(e.cfg.Lanes, ","))
	}
	nr := &executor.NewRun{Env: f.env, Kind: f.kind, Intent: f.intent, Lane: f.lane, DryRun: f.dryRun}
	if f.session != "" {
		if !uuidPattern.MatchString(f.session) {
			return nil, usage("--session %q: must be a session id (UUID)", f.session)
		}
		nr.SessionID = &f.session
	}
	if cmd.Flags().Changed("priority") {
		nr.Priority = &f.priority
	}
	if f.timeout < 0 || (f.timeout > 0 && f.timeout < time.Second) {
		return nil, usage("--timeout %s: must be at least 1s", f.timeout)
	}
	if f.timeout > 0 {
		secs := int(f.timeout.Round(time.Second) / time.Second)
		nr.TimeoutSeconds = &secs
	}
	inputs := map[string]any{}
	for _, kv := range f.inputs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !inputKey.MatchString(k) {
			return nil, usage("--input %q: must be KEY=VALUE with KEY a letter or _ followed by letters, digits or _", kv)
		}
		if _, dup := inputs[k]; dup {
			return nil, usage("--input %s given twice", k)
		}
		inputs[k] = v
	}
	if len(inputs) > 0 {
		raw, err := json.Marshal(inputs)
		if err != nil {
			return nil, err
		}
		nr.Input = raw
	}
	if f.template != "" {
		tpl, err := s.GetTemplate(ctx, f.template)
		if errors.Is(err, executor.ErrNotFound) {
			return nil, usage("--template %q: no run template has this slug or id", f.template)
		}
		if err != nil {
			return nil, fmt.Errorf("look up template %q: %w", f.template, err)
		}
		// Tools are the daemon's business; here only the inputs are checked.
		parsed, err := runbooks.ParseTemplate(tpl.TemplateYAML, func(string, string) bool { return true })
		if err != nil {
			return nil, usage("--template %s: %v", tpl.Slug, err)
		}
		if _, err := parsed.ResolveInputs(inputs); err != nil {
			return nil, usage("--template %s: %v", tpl.Slug, err)
		}
		nr.TemplateID = &tpl.ID
	}
	return nr, nil
}
