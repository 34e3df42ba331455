package runbooks

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/opscontrolroom/opsd/executor"
)

// Template is a parsed run_templates.template_yaml:
//
//	version: 1
//	inputs:
//	  - {key: project, label: Vercel project, type: string, required: true}
//	steps:
//	  - {id: build, title: Build, kind: tool, tool: vercel, action: deploy, args: {project: "{{inputs.project}}"}}
//
// Steps run in the action phase unless they say `phase: preflight` or
// `phase: verify`. There is no shell step. An optional `retry:` block
// (`retry: {max_attempts: 3, backoff: 30s}`) gives the template's runs
// automatic retries, in place of the kind's `retries:` configuration.
type Template struct {
	Version int             `yaml:"version"`
	Inputs  []TemplateInput `yaml:"inputs"`
	Steps   []TemplateStep  `yaml:"steps"`
	Retry   *TemplateRetry  `yaml:"retry"`

	retryBackoff time.Duration // Retry.Backoff, parsed
}

// TemplateRetry is a template's automatic retries: an attempt that fails
// before its action phase is queued again after Backoff (doubled per
// attempt), up to MaxAttempts attempts in all; one that fails in or after
// the action phase is never retried.
type TemplateRetry struct {
	MaxAttempts int    `yaml:"max_attempts"` // attempts in all, 1-10
	Backoff     string `yaml:"backoff"`      // 1s-24h; default 30s
}

// TemplateInput declares one input.
type TemplateInput struct {
	Key      string   `yaml:"key"`
	Label    string   `yaml:"label"`
	Type     string   `yaml:"type"` // string (default), text, number, boolean, select
	Required bool     `yaml:"required"`
	Default  any      `yaml:"default"`
	Options  []string `yaml:"options"`
}

// TemplateStep is one step.
type TemplateStep struct {
	ID     string         `yaml:"id"`
	Title  string         `yaml:"title"`
	Kind   string         `yaml:"kind"` // system or tool
	Tool   string         `yaml:"tool"`
	Action string         `yaml:"action"`
	Phase  string         `yaml:"phase"` // preflight, action (default) or verify
	Args   map[string]any `yaml:"args"`
}

// maxTemplateBytes bounds what the parser reads.
const maxTemplateBytes = 256 << 10

var (
	stepIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	inputKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	placeholder     = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)
)

// ParseTemplate parses and checks a template's shape: version, input
// declarations, step ids, kinds, phases, and that every placeholder names a
// declared input. known says which tool actions exist ("tool.action").
func ParseTemplate(src string, known func(tool, action string) bool) (*Template, error) {
	if len(src) > maxTemplateBytes {
		return nil, fmt.Errorf("template is %d bytes; the limit is %d", len(src), maxTemplateBytes)
	}
	var t Template
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("template YAML: %w", err)
	}
	if t.Version != 1 {
		return nil, fmt.Errorf("template version must be 1, got %d", t.Version)
	}
	declared := map[string]TemplateInput{}
	for i, in := range t.Inputs {
		if !inputKeyPattern.MatchString(in.Key) {
			return nil, fmt.Errorf("inputs[%d]: key %q must be a letter or _ then letters, digits or _", i, in.Key)
		}
		if _, dup := declared[in.Key]; dup {
			return nil, fmt.Errorf("inputs[%d]: key %q declared twice", i, in.Key)
		}
		switch in.Type {
		case "", "string", "text", "number", "boolean":
		case "select":
			if len(in.Options) == 0 {
				return nil, fmt.Errorf("input %q: type select needs options", in.Key)
			}
		default:
			return nil, fmt.Errorf("input %q: type must be string, text, number, boolean or select, not %q", in.Key, in.Type)
		}
		declared[in.Key] = in
	}
	if err := t.checkRetry(); err != nil {
		return nil, err
	}
	if len(t.Steps) == 0 {
		return nil, errors.New("template has no steps")
	}
	ids := map[string]bool{}
	for i, s := range t.Steps {
		where := fmt.Sprintf("steps[%d] (%s)", i, s.ID)
		if !stepIDPattern.MatchString(s.ID) {
			return nil, fmt.Errorf("steps[%d]: id %q must be 1-64 letters, digits, '_', '.' or '-'", i, s.ID)
		}
		if ids[s.ID] {
			return nil, fmt.Errorf("%s: id used twice", where)
		}
		ids[s.ID] = true
		switch s.Phase {
		case "", "preflight", "action", "verify":
		default:
			return nil, fmt.Errorf("%s: phase must be preflight, action or verify, not %q", where, s.Phase)
		}
		switch s.Kind {
		case "system":
			if s.Tool != "" {
				return nil, fmt.Errorf("%s: a system step has no tool", where)
			}
			if _, ok := systemActions[s.Action]; !ok {
				return nil, fmt.Errorf("%s: unknown system action %q (known: %s)", where, s.Action, strings.Join(systemActionNames(), ", "))
			}
		case "tool":
			if s.Tool == "" || s.Action == "" {
				return nil, fmt.Errorf("%s: a tool step needs tool and action", where)
			}
			if known == nil || !known(s.Tool, s.Action) {
				return nil, fmt.Errorf("%s: unknown tool action %s.%s", where, s.Tool, s.Action)
			}
		case "shell", "exec", "command":
			return nil, fmt.Errorf("%s: there is no %s step: use a tool action", where, s.Kind)
		default:
			return nil, fmt.Errorf("%s: kind must be system or tool, not %q", where, s.Kind)
		}
		if err := walkStrings(s.Args, func(v string) error {
			for _, m := range placeholder.FindAllStringSubmatch(v, -1) {
				key, ok := strings.CutPrefix(m[1], "inputs.")
				if !ok {
					return fmt.Errorf("placeholder {{%s}}: only {{ inputs.<key> }} is allowed", m[1])
				}
				if _, ok := declared[key]; !ok {
					return fmt.Errorf("placeholder {{%s}} names input %q, which the template does not declare", m[1], key)
				}
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("%s: args: %w", where, err)
		}
	}
	return &t, nil
}

// checkRetry validates the `retry:` block, naming the field and value.
func (t *Template) checkRetry() error {
	if t.Retry == nil {
		return nil
	}
	if n := t.Retry.MaxAttempts; n < 1 || n > 10 {
		return fmt.Errorf("retry.max_attempts = %d: must be between 1 and 10", n)
	}
	t.retryBackoff = 30 * time.Second
	if t.Retry.Backoff != "" {
		d, err := time.ParseDuration(t.Retry.Backoff)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return fmt.Errorf("retry.backoff = %q: must be a duration between 1s and 24h, e.g. 30s", t.Retry.Backoff)
		}
		t.retryBackoff = d
	}
	return nil
}

// RetryPolicy is the template's `retry:` block, if it has one.
func (t *Template) RetryPolicy() (executor.RetryPolicy, bool) {
	if t == nil || t.Retry == nil {
		return executor.RetryPolicy{}, false
	}
	return executor.RetryPolicy{MaxAttempts: t.Retry.MaxAttempts, Backoff: t.retryBackoff}, true
}

// ResolveInputs checks the run's inputs against the declarations: required
// inputs are present, types match, select values are among the options;
// defaults fill the rest. The message names the input and what is expected.
func (t *Template) ResolveInputs(given map[string]any) (map[string]any, error) {
	out := map[string]any{}
	var problems []string
	for _, in := range t.Inputs {
		v, ok := given[in.Key]
		if !ok || v == nil || v == "" {
			if in.Default != nil {
				out[in.Key] = in.Default
				continue
			}
			if in.Required {
				problems = append(problems, fmt.Sprintf("input %q (%s) is required", in.Key, labelOr(in)))
			}
			continue
		}
		cv, err := coerce(in, v)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		out[in.Key] = cv
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

func labelOr(in TemplateInput) string {
	if in.Label != "" {
		return in.Label
	}
	return in.Key
}

func coerce(in TemplateInput, v any) (any, error) {
	switch in.Type {
	case "number":
		switch n := v.(type) {
		case float64, int, int64:
			return n, nil
		case string:
			f, err := strconv.ParseFloat(n, 64)
			if err != nil {
				return nil, fmt.Errorf("input %q must be a number, got %q", in.Key, n)
			}
			return f, nil
		}
		return nil, fmt.Errorf("input %q must be a number, got %T", in.Key, v)
	case "boolean":
		switch b := v.(type) {
		case bool:
			return b, nil
		case string:
			p, err := strconv.ParseBool(b)
			if err != nil {
				return nil, fmt.Errorf("input %q must be true or false, got %q", in.Key, b)
			}
			return p, nil
		}
		return nil, fmt.Errorf("input %q must be true or false, got %T", in.Key, v)
	case "select":
		s := fmt.Sprint(v)
		for _, o := range in.Options {
			if o == s {
				return s, nil
			}
		}
		return nil, fmt.Errorf("input %q must be one of %s, got %q", in.Key, strings.Join(in.Options, ", "), s)
	default:
		switch s := v.(type) {
		case string:
			return s, nil
		case float64, bool, int:
			return fmt.Sprint(s), nil
		}
		return nil, fmt.Errorf("input %q must be text, got %T", in.Key, v)
	}
}

// Interpolate replaces {{ inputs.key }} in every string of args. A key
// without a value is an error, never an empty string. A string that is only
// a placeholder takes the input's value with its type.
func Interpolate(args map[string]any, inputs map[string]any) (map[string]any, error) {
	out, err := interpolateValue(args, inputs)
	if err != nil {
		return nil, err
	}
	m, _ := out.(map[string]any)
	return m, nil
}

func interpolateValue(v any, inputs map[string]any) (any, error) {
	switch x := v.(type) {
	case string:
		if m := placeholder.FindStringSubmatchIndex(x); m != nil && m[0] == 0 && m[1] == len(x) {
			return lookupInput(x[m[2]:m[3]], inputs)
		}
		var firstErr error
		s := placeholder.ReplaceAllStringFunc(x, func(ph string) string {
			key := placeholder.FindStringSubmatch(ph)[1]
			val, err := lookupInput(key, inputs)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return ""
			}
			return fmt.Sprint(val)
		})
		return s, firstErr
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := interpolateValue(e, inputs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := interpolateValue(e, inputs)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

func lookupInput(expr string, inputs map[string]any) (any, error) {
	key, ok := strings.CutPrefix(strings.TrimSpace(expr), "inputs.")
	if !ok {
		return nil, fmt.Errorf("placeholder {{%s}}: only {{ inputs.<key> }} is allowed", expr)
	}
	v, ok := inputs[key]
	if !ok || v == nil {
		return nil, fmt.Errorf("input %q has no value (not given, no default)", key)
	}
	return v, nil
}

func walkStrings(v any, fn func(string) error) error {
	switch x := v.(type) {
	case string:
		return fn(x)
	case map[string]any:
		for _, e := range x {
			if err := walkStrings(e, fn); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := walkStrings(e, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
