package runbooks

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/executor"
)

// ToolAction is what a template's tool step runs, with interpolated args.
type ToolAction func(ctx context.Context, rc *executor.RunContext, args map[string]any) error

// Tool is one step action: Check validates its interpolated args in the
// validate phase, before any integration is touched; Run performs it.
type Tool struct {
	Check func(args map[string]any) error // nil: any args
	Run   ToolAction
	// Targets says what the action touches, from its checked args and the
	// run's env; each target's Input names the arg (args.project). nil:
	// nothing a policy governs.
	Targets func(args map[string]any, env string) []executor.Target
}

// Tools maps "tool.action" to its implementation.
type Tools map[string]Tool

// Has reports whether tool.action exists.
func (t Tools) Has(tool, action string) bool {
	_, ok := t[tool+"."+action]
	return ok
}

// Names lists the tool actions, sorted.
func (t Tools) Names() []string {
	out := make([]string, 0, len(t))
	for k := range t {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// systemActions are the steps that need no integration.
var systemActions = map[string]Tool{
	"noop":  {Run: noopAction},
	"sleep": {Run: sleepAction, Check: func(args map[string]any) error { _, err := parseDuration(args["duration"]); return err }},
}

func systemActionNames() []string {
	out := make([]string, 0, len(systemActions))
	for k := range systemActions {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func noopAction(ctx context.Context, rc *executor.RunContext, args map[string]any) error {
	msg := "noop"
	if m, ok := args["message"].(string); ok && m != "" {
		msg = m
	}
	return rc.Info("System", msg, nil)
}

// maxSleep bounds a sleep step; longer waits belong to a run timeout.
const maxSleep = 24 * time.Hour

// sleepAction waits for args.duration ("1.5s", "2m" or a number of seconds)
// or until the run is canceled.
func sleepAction(ctx context.Context, rc *executor.RunContext, args map[string]any) error {
	d, err := parseDuration(args["duration"])
	if err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func parseDuration(v any) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case nil:
		return 0, fmt.Errorf("sleep needs args.duration, e.g. \"2s\"")
	case string:
		var err error
		if d, err = time.ParseDuration(x); err != nil {
			f, ferr := strconv.ParseFloat(x, 64)
			if ferr != nil {
				return 0, fmt.Errorf("sleep duration %q: use a Go duration such as 1.5s or 2m, or seconds", x)
			}
			d = time.Duration(f * float64(time.Second))
		}
	case float64:
		d = time.Duration(x * float64(time.Second))
	case int:
		d = time.Duration(x) * time.Second
	default:
		return 0, fmt.Errorf("sleep duration must be a string or a number, got %T", v)
	}
	if d < 0 || d > maxSleep {
		return 0, fmt.Errorf("sleep duration %s must be between 0 and %s", d, maxSleep)
	}
	return d, nil
}

// TemplateRunbook runs a run_templates row.
type TemplateRunbook struct {
	Source *executor.Template
	Tools  Tools

	tpl     *Template
	steps   []resolvedStep
	targets []executor.Target

	clients *clients // classifies and allowlists targets; nil: targets as the tools give them

	// parsed is the template already parsed by the Resolver's cache (it is
	// never modified), so a template is not re-parsed for every run.
	parsed   *Template
	parseErr error
}

type resolvedStep struct {
	TemplateStep
	args map[string]any
	tool Tool
}

var (
	_ executor.DryRunner     = (*TemplateRunbook)(nil)
	_ executor.Targeter      = (*TemplateRunbook)(nil)
	_ executor.RetryPolicyer = (*TemplateRunbook)(nil)
)

// RetryPolicy is the template's own `retry:` block, if it has one.
func (t *TemplateRunbook) RetryPolicy() (executor.RetryPolicy, bool) {
	if t.tpl != nil {
		return t.tpl.RetryPolicy()
	}
	return t.parsed.RetryPolicy()
}

// Targets are what the template's tool steps touch, after interpolation.
func (t *TemplateRunbook) Targets() []executor.Target { return t.targets }

// Validate parses the template and resolves the run's inputs into each step.
func (t *TemplateRunbook) Validate(ctx context.Context, rc *executor.RunContext) error {
	tpl, err := t.parsed, t.parseErr
	if tpl == nil && err == nil {
		tpl, err = ParseTemplate(t.Source.TemplateYAML, t.Tools.Has)
	}
	if err != nil {
		return fmt.Errorf("%w: template %s: %v", executor.ErrValidation, t.Source.Slug, err)
	}
	inputs, err := tpl.ResolveInputs(rc.Inputs)
	if err != nil {
		return fmt.Errorf("%w: %v", executor.ErrValidation, err)
	}
	t.tpl, t.steps, t.targets = tpl, nil, nil
	var raw []executor.Target
	for _, s := range tpl.Steps {
		args, err := Interpolate(s.Args, inputs)
		if err != nil {
			return fmt.Errorf("%w: step %s: %v", executor.ErrValidation, s.ID, err)
		}
		tool := systemActions[s.Action]
		if s.Kind == "tool" {
			tool = t.Tools[s.Tool+"."+s.Action]
		}
		if tool.Check != nil {
			if err := tool.Check(args); err != nil {
				return fmt.Errorf("%w: step %s (%s): %v", executor.ErrValidation, s.ID, actionName(s), err)
			}
		}
		t.steps = append(t.steps, resolvedStep{TemplateStep: s, args: args, tool: tool})
		if tool.Targets != nil {
			for _, tg := range tool.Targets(args, rc.Run.Env) {
				tg.Input = strings.TrimSpace("step " + s.ID + " " + tg.Input)
				raw = append(raw, tg)
			}
		}
	}
	t.targets = raw
	if t.clients != nil {
		if t.targets, err = t.clients.resolveTargets(rc.Run, raw); err != nil {
			return err
		}
	}
	return rc.Info("System", fmt.Sprintf("template %s: %d steps, inputs valid", t.Source.Slug, len(t.steps)), nil)
}

// Preflight runs the steps marked phase: preflight.
func (t *TemplateRunbook) Preflight(ctx context.Context, rc *executor.RunContext) error {
	return t.runPhase(ctx, rc, "preflight")
}

// Action runs the steps of the action phase (the default).
func (t *TemplateRunbook) Action(ctx context.Context, rc *executor.RunContext) error {
	return t.runPhase(ctx, rc, "action")
}

// Verify runs the steps marked phase: verify.
func (t *TemplateRunbook) Verify(ctx context.Context, rc *executor.RunContext) error {
	return t.runPhase(ctx, rc, "verify")
}

// Summarize reports the steps that ran.
func (t *TemplateRunbook) Summarize(ctx context.Context, rc *executor.RunContext) error {
	ids := make([]string, len(t.steps))
	for i, s := range t.steps {
		ids[i] = s.ID
	}
	rc.SetOutput("steps", ids)
	return rc.Info("System", fmt.Sprintf("template %s finished: %s", t.Source.Slug, strings.Join(ids, ", ")), nil)
}

// DescribeAction says what the action phase would run.
func (t *TemplateRunbook) DescribeAction(ctx context.Context, rc *executor.RunContext) (string, error) {
	var parts []string
	for _, s := range t.steps {
		if phaseOf(s.TemplateStep) == "action" {
			parts = append(parts, fmt.Sprintf("%s (%s)", s.ID, actionName(s.TemplateStep)))
		}
	}
	if len(parts) == 0 {
		return "nothing (no action steps)", nil
	}
	return strings.Join(parts, ", "), nil
}

func (t *TemplateRunbook) runPhase(ctx context.Context, rc *executor.RunContext, phase string) error {
	ctx = traced(ctx, rc, "")
	for _, s := range t.steps {
		if phaseOf(s.TemplateStep) != phase {
			continue
		}
		args, _ := json.Marshal(s.args)
		spec := executor.StepSpec{ID: s.ID, Title: s.Title, Kind: s.Kind, Tool: s.Tool, Action: s.Action, Args: args}
		if spec.Title == "" {
			spec.Title = s.ID
		}
		err := rc.Step(ctx, spec, func(ctx context.Context) error { return s.tool.Run(ctx, rc, s.args) })
		if err != nil {
			return fmt.Errorf("step %s (%s): %w", s.ID, actionName(s.TemplateStep), err)
		}
	}
	return nil
}

func phaseOf(s TemplateStep) string {
	if s.Phase == "" {
		return "action"
	}
	return s.Phase
}

func actionName(s TemplateStep) string {
	if s.Kind == "tool" {
		return s.Tool + "." + s.Action
	}
	return s.Action
}
