package runbooks

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/opscontrolroom/opsd/executor"
)

// Shapes of inputs, with the words validation errors use for them.
var (
	repoPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$`)
	refPattern  = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._/-]{0,199}$`)
	slugPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	identPat    = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

const (
	expectRepo = `a GitHub repository "owner/name"`
	expectRef  = "a branch, tag or commit (letters, digits, '.', '_', '-', '/'; no '..')"
	expectSlug = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
)

// Envs are the environments runs.env allows.
var Envs = []string{"prod", "staging", "dev"}

// params reads a run's inputs: runs.input, then the plan's input values
// (both merged by executor.MergeInputs into rc.Inputs), then
// integrations.defaults. Problems are collected so that validation names
// every bad input at once.
type params struct {
	given    map[string]any
	defaults map[string]any // keys lower-cased: viper lower-cases configuration keys
	problems []string
	warnings []string
}

func (c *clients) params(rc *executor.RunContext) *params {
	p := &params{given: rc.Inputs, defaults: map[string]any{}}
	if p.given == nil {
		p.given = map[string]any{}
	}
	for k, v := range c.cfg.Defaults {
		p.defaults[strings.ToLower(k)] = v
	}
	// MergeInputs ignores JSON it cannot parse; validation reports it.
	if raw := rc.Run.Input; len(raw) > 0 && string(raw) != "null" {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			p.problem("runs.input must be a JSON object of inputs, got %.60s", string(raw))
		}
	}
	if _, err := executor.ParsePlan(rc.Run.Plan); err != nil {
		p.problem("%v", err)
	}
	if v, ok := p.given["env"]; ok && v != nil && v != "" {
		s, _ := v.(string)
		switch {
		case !slices.Contains(Envs, s):
			p.problem("input %q must be one of %s, got %v", "env", strings.Join(Envs, ", "), v)
		case s != rc.Run.Env:
			p.warnings = append(p.warnings, fmt.Sprintf("input env = %s differs from the run's env %s; the run's env is used", s, rc.Run.Env))
		}
	}
	return p
}

func (p *params) problem(format string, args ...any) {
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// lookup returns the first of keys that has a value, from the run, then from
// integrations.defaults.
func (p *params) lookup(keys ...string) (string, any, bool) {
	for _, k := range keys {
		if v, ok := p.given[k]; ok && v != nil && v != "" {
			return k, v, true
		}
	}
	for _, k := range keys {
		if v, ok := p.defaults[strings.ToLower(k)]; ok && v != nil && v != "" {
			return k, v, true
		}
	}
	return keys[0], nil, false
}

// str returns the text of the first of keys that is set, else the first
// non-empty fallback (configuration), else "". A number is taken as text;
// anything else is a problem.
func (p *params) str(keys []string, fallbacks ...string) string {
	key, v, ok := p.lookup(keys...)
	if !ok {
		for _, f := range fallbacks {
			if f != "" {
				return f
			}
		}
		return ""
	}
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	}
	p.problem("input %q must be text, got %s", key, describeJSON(v))
	return ""
}

// text reads a free-text input.
func (p *params) text(key string) string { return p.str([]string{key}) }

// required reports a missing value.
func (p *params) required(key, value, what string) {
	if value == "" {
		p.problem("input %q is required: %s", key, what)
	}
}

// shape reports a value that does not match re.
func (p *params) shape(key, value string, re *regexp.Regexp, expect string) {
	if value != "" && !hasShape(value, re) {
		p.problem("input %q must be %s, got %q", key, expect, value)
	}
}

// oneOf reports a value outside options.
func (p *params) oneOf(key, value string, options []string) {
	if value != "" && !slices.Contains(options, value) {
		p.problem("input %q must be one of %s, got %q", key, strings.Join(options, ", "), value)
	}
}

// boolean reads a true/false input (JSON boolean, or "true"/"false", "yes"/"no", "1"/"0").
func (p *params) boolean(key string, def bool) bool {
	_, v, ok := p.lookup(key)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case bool:
		return x
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes", "1", "on":
			return true
		case "false", "no", "0", "off":
			return false
		}
	case float64:
		if x == 0 || x == 1 {
			return x == 1
		}
	}
	p.problem("input %q must be true or false, got %s", key, describeJSON(v))
	return def
}

// list reads a list of strings: a JSON array, or text split on commas,
// spaces and newlines.
func (p *params) list(key string) []string {
	_, v, ok := p.lookup(key)
	if !ok {
		return nil
	}
	switch x := v.(type) {
	case string:
		return strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == '\n' || r == ' ' || r == '\t' })
	case []any:
		return textItems(x, func(i int, e any) {
			p.problem("input %q[%d] must be text, got %s", key, i, describeJSON(e))
		})
	}
	p.problem("input %q must be a list of text, got %s", key, describeJSON(v))
	return nil
}

// err is the validation error, or nil.
func (p *params) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", executor.ErrValidation, strings.Join(p.problems, "; "))
}

// report writes the warnings collected while reading inputs.
func (p *params) report(rc *executor.RunContext) {
	for _, w := range p.warnings {
		_ = rc.Warn(srcSystem, w, nil)
	}
}

// textItems returns the text elements of a JSON list, calling bad with the
// index and value of each element that is not text.
func textItems(list []any, bad func(i int, e any)) []string {
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			bad(i, e)
			continue
		}
		out = append(out, s)
	}
	return out
}

// hasShape reports whether s matches re. ".." is refused whatever re allows,
// so that no value can climb out of a path it is joined to.
func hasShape(s string, re *regexp.Regexp) bool {
	return re.MatchString(s) && !strings.Contains(s, "..")
}

func describeJSON(v any) string {
	kind := "a value"
	switch v.(type) {
	case bool:
		kind = "a boolean"
	case float64, int:
		kind = "a number"
	case string:
		kind = "text"
	case map[string]any:
		kind = "an object"
	case []any:
		kind = "a list"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return kind
	}
	if len(b) > 60 {
		b = append(b[:57], "..."...)
	}
	return fmt.Sprintf("%s %s", kind, b)
}

// splitRepo splits a validated "owner/name".
func splitRepo(repo string) (string, string) {
	owner, name, _ := strings.Cut(repo, "/")
	return owner, name
}

// firstLine is the first line of s, cut to n runes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
