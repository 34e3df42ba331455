package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/opscontrolroom/opsd/executor"
)

// Exit codes of `opsd tail` and `opsd submit --follow` besides 0 (the run
// succeeded); 2 is kept for usage and configuration errors, as in every command.
const (
	exitRunError    = 1 // the run ended in error, or following it failed
	exitRunCanceled = 3 // the run was canceled
)

// eventPage is how many events one poll reads; a full page is followed by
// another read at once.
const eventPage = 500

// maxPollFailures is how many consecutive transient store errors a follower
// tolerates before it gives up.
const maxPollFailures = 10

func newTailCmd() *cobra.Command {
	var tf tailFlags
	cmd := &cobra.Command{
		Use:   "tail RUN_ID",
		Short: "Stream a run's events until it finishes; the exit code is the run's outcome",
		Long: `tail prints a run's events as the daemon writes them: first those already
stored (in seq order), then new ones, polling every --interval, until the run
reaches a terminal status. Then it prints the run's artifacts and outcome.

On a terminal each line's level is coloured (--no-color or NO_COLOR turns that
off); --json prints one JSON object per line instead: {"type":"event",...} per
event, {"type":"artifact",...} per artifact and a final {"type":"run",...}.

Exit codes: 0 the run succeeded, 1 it ended in error (or tail failed),
2 usage or configuration error, 3 the run was canceled.`,
		Example: `  opsd tail 3f1c2a9e-8d8b-4c55-9a57-0b1e6f3b2d11
  opsd tail --json $RUN_ID | jq -r 'select(.type=="event") | .message'
  opsd tail $RUN_ID; echo "exit $?"   # 0 success, 1 error, 3 canceled`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}
	flagErrorsAreUsage(cmd)
	loader := withConfig(cmd)
	tf.register(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRunIDs(args); err != nil {
			return err
		}
		if err := tf.check(); err != nil {
			return err
		}
		return withStore(cmd, loader, func(ctx context.Context, e *env, store cliStore) error {
			f := &follower{store: store, interval: tf.interval, out: tf.renderer(cmd.OutOrStdout())}
			run, err := f.follow(ctx, args[0])
			if err != nil {
				return err
			}
			return runOutcome(run)
		})
	}
	return cmd
}

// tailFlags are the output flags of tail, shared by submit --follow.
type tailFlags struct {
	json     bool
	noColor  bool
	interval time.Duration
}

func (t *tailFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&t.json, "json", false, "print JSON lines (events, artifacts, then the run) instead of text")
	fs.BoolVar(&t.noColor, "no-color", false, "never colour levels (also when NO_COLOR is set); colour is only used on a terminal")
	fs.DurationVar(&t.interval, "interval", 500*time.Millisecond, "how often to poll for new events")
}

// minInterval keeps --interval from turning polling into a busy loop.
const minInterval = 10 * time.Millisecond

func (t *tailFlags) check() error {
	if t.interval < minInterval {
		return usageErr(fmt.Errorf("--interval %s: must be at least %s", t.interval, minInterval))
	}
	return nil
}

func (t *tailFlags) renderer(w io.Writer) *renderer {
	return &renderer{w: &lockedWriter{w: w}, json: t.json,
		color: !t.json && !t.noColor && os.Getenv("NO_COLOR") == "" && isTerminal(w)}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runOutcome maps a terminal run to the documented exit code. The outcome
// line is already printed, so the error carries no message.
func runOutcome(run *executor.Run) error {
	switch run.Status {
	case executor.StatusSuccess:
		return nil
	case executor.StatusCanceled:
		return &ExitError{Code: exitRunCanceled}
	default:
		return &ExitError{Code: exitRunError}
	}
}

// follower streams one run's events until the run is terminal.
type follower struct {
	store    executor.OperatorStore
	interval time.Duration
	out      *renderer
}

// follow prints the run's events, then its artifacts and outcome, and
// returns the terminal run. The run is read before its events on every pass:
// the daemon stores a run's last events before its terminal status, so the
// pass that sees the status also sees every event.
func (f *follower) follow(ctx context.Context, runID string) (*executor.Run, error) {
	after, failures := 0, 0
	for {
		run, err := f.pass(ctx, runID, &after)
		switch {
		case err == nil:
			failures = 0
		case executor.Retryable(err) && failures < maxPollFailures && ctx.Err() == nil:
			failures++
		default:
			return nil, fmt.Errorf("follow run %s: %w", runID, err)
		}
		if err == nil && run.Terminal() {
			arts, err := f.store.ListArtifacts(ctx, runID)
			if err != nil {
				return nil, fmt.Errorf("list artifacts of run %s: %w", runID, err)
			}
			f.out.artifacts(arts)
			f.out.result(run)
			return run, nil
		}
		t := time.NewTimer(f.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("follow run %s: %w", runID, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// pass reads the run, then prints every event after *after.
func (f *follower) pass(ctx context.Context, runID string, after *int) (*executor.Run, error) {
	run, err := f.store.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	for {
		events, err := f.store.ListEvents(ctx, runID, *after, eventPage)
		if err != nil {
			return nil, err
		}
		for _, e := range events {
			f.out.event(e)
			*after = e.Seq
		}
		if len(events) < eventPage {
			return run, nil
		}
	}
}

// renderer prints events, artifacts and outcomes as text or JSON lines.
type renderer struct {
	w      io.Writer
	json   bool
	color  bool
	prefix string // put before every text line, e.g. a run's name when several are streamed
}

const (
	ansiReset = "\x1b[0m"
	ansiDim   = "\x1b[2m"
)

var levelColor = map[string]string{
	executor.LevelDebug:   "\x1b[90m",
	executor.LevelInfo:    "\x1b[36m",
	executor.LevelWarn:    "\x1b[33m",
	executor.LevelError:   "\x1b[31m",
	executor.LevelSuccess: "\x1b[32m",
}

func (r *renderer) paint(color, s string) string {
	if !r.color || color == "" {
		return s
	}
	return color + s + ansiReset
}

func (r *renderer) jsonLine(kind string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	// Splice "type" in front of the object's own fields.
	fmt.Fprintf(r.w, "{\"type\":%q,%s\n", kind, bytes.TrimPrefix(b, []byte("{")))
}

// event prints `[LEVEL] source  time  phase  message`, as the UI renders a
// row, with non-empty data pretty-printed below it.
func (r *renderer) event(e executor.Event) {
	if r.json {
		r.jsonLine("event", e)
		return
	}
	var b strings.Builder
	b.WriteString(r.prefix)
	b.WriteString(r.paint(levelColor[e.Level], fmt.Sprintf("[%-7s]", strings.ToUpper(e.Level))))
	fmt.Fprintf(&b, " %-12s %s ", e.Source, r.paint(ansiDim, e.TS.Local().Format("15:04:05.000")))
	if e.Phase != "" {
		fmt.Fprintf(&b, "%-9s ", e.Phase)
	}
	b.WriteString(e.Message)
	if d := prettyData(e.Data); d != "" {
		for _, line := range strings.Split(d, "\n") {
			b.WriteString("\n" + r.prefix + "    " + r.paint(ansiDim, line))
		}
	}
	b.WriteString("\n")
	io.WriteString(r.w, b.String()) //nolint:errcheck
}

func prettyData(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" || string(t) == "{}" || string(t) == "[]" {
		return ""
	}
	var out bytes.Buffer
	if err := json.Indent(&out, t, "", "  "); err != nil {
		return string(t)
	}
	return out.String()
}

// artifactPreviewLines bounds how much of a file or diff artifact is shown.
const artifactPreviewLines = 10

func (r *renderer) artifacts(as []executor.Artifact) {
	if r.json {
		for _, a := range as {
			r.jsonLine("artifact", a)
		}
		return
	}
	if len(as) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%sartifacts:\n", r.prefix)
	for _, a := range as {
		if a.Kind == executor.ArtifactLink {
			fmt.Fprintf(&b, "%s  link  %s: %s\n", r.prefix, a.Title, a.Value)
			continue
		}
		fmt.Fprintf(&b, "%s  %-4s  %s (%d bytes)\n", r.prefix, a.Kind, a.Title, len(a.Value))
		lines := strings.Split(strings.TrimRight(a.Value, "\n"), "\n")
		for i, l := range lines {
			if i == artifactPreviewLines {
				fmt.Fprintf(&b, "%s        ... %d more lines\n", r.prefix, len(lines)-i)
				break
			}
			fmt.Fprintf(&b, "%s        %s\n", r.prefix, l)
		}
	}
	io.WriteString(r.w, b.String()) //nolint:errcheck
}

// result prints the run's outcome line.
func (r *renderer) result(run *executor.Run) {
	if r.json {
		r.jsonLine("run", run)
		return
	}
	took := ""
	if run.StartedAt != nil && run.FinishedAt != nil {
		took = " in " + run.FinishedAt.Sub(*run.StartedAt).Round(10*time.Millisecond).String()
	}
	line := fmt.Sprintf("run %s %s%s", run.ID, run.Status, took)
	if run.ErrorMessage != nil && *run.ErrorMessage != "" {
		line += ": " + *run.ErrorMessage
	}
	color := levelColor[executor.LevelSuccess]
	switch run.Status {
	case executor.StatusError:
		color = levelColor[executor.LevelError]
	case executor.StatusCanceled:
		color = levelColor[executor.LevelWarn]
	}
	fmt.Fprintf(r.w, "%s%s\n", r.prefix, r.paint(color, line))
}

// lockedWriter serializes whole writes, so that lines of runs streamed side
// by side do not interleave mid-line.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
