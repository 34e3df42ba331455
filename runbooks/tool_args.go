package runbooks

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// argReader reads a tool step's interpolated args and collects every
// problem, including args the tool does not know.
type argReader struct {
	tool     string
	args     map[string]any
	known    []string
	problems []string
}

func readArgs(tool string, args map[string]any) *argReader {
	return &argReader{tool: tool, args: args}
}

func (a *argReader) problem(format string, v ...any) {
	a.problems = append(a.problems, fmt.Sprintf(format, v...))
}

func (a *argReader) get(key string) (any, bool) {
	a.known = append(a.known, key)
	v, ok := a.args[key]
	return v, ok && v != nil && v != ""
}

// str reads text; what says what the arg is, for the error messages.
func (a *argReader) str(key string, required bool, re *regexp.Regexp, what string) string {
	v, ok := a.get(key)
	if !ok {
		if required {
			a.problem("args.%s is required: %s", key, what)
		}
		return ""
	}
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case float64, int:
		s = fmt.Sprint(x)
	default:
		a.problem("args.%s must be text (%s), got %s", key, what, describeJSON(v))
		return ""
	}
	if re != nil && !hasShape(s, re) {
		a.problem("args.%s must be %s, got %q", key, what, s)
	}
	return s
}

func (a *argReader) boolean(key string, def bool) bool {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case bool:
		return x
	case string:
		if b, err := strconv.ParseBool(x); err == nil {
			return b
		}
	}
	a.problem("args.%s must be true or false, got %s", key, describeJSON(v))
	return def
}

func (a *argReader) integer(key string, def, lo, hi int) int {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	var n float64
	switch x := v.(type) {
	case float64:
		n = x
	case int:
		n = float64(x)
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			a.problem("args.%s must be a whole number from %d to %d, got %q", key, lo, hi, x)
			return def
		}
		n = f
	default:
		a.problem("args.%s must be a whole number from %d to %d, got %s", key, lo, hi, describeJSON(v))
		return def
	}
	if n != math.Trunc(n) || n < float64(lo) || n > float64(hi) {
		a.problem("args.%s must be a whole number from %d to %d, got %v", key, lo, hi, n)
		return def
	}
	return int(n)
}

// list reads a list of text (or one comma-separated text).
func (a *argReader) list(key string) []string {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	switch x := v.(type) {
	case string:
		var out []string
		for _, p := range strings.Split(x, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	case []any:
		return textItems(x, func(i int, e any) {
			a.problem("args.%s[%d] must be text, got %s", key, i, describeJSON(e))
		})
	}
	a.problem("args.%s must be a list of text, got %s", key, describeJSON(v))
	return nil
}

// strMap reads an object of text values.
func (a *argReader) strMap(key string, required bool, what string) map[string]string {
	v, ok := a.get(key)
	if !ok {
		if required {
			a.problem("args.%s is required: %s", key, what)
		}
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		a.problem("args.%s must be an object (%s), got %s", key, what, describeJSON(v))
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		switch x := e.(type) {
		case string:
			out[k] = x
		case float64, bool, int:
			out[k] = fmt.Sprint(x)
		default:
			a.problem("args.%s.%s must be text, got %s", key, k, describeJSON(e))
		}
	}
	return out
}

// err reports the problems, and args that were not read.
func (a *argReader) err() error {
	for k := range a.args {
		if !slices.Contains(a.known, k) {
			known := slices.Clone(a.known)
			slices.Sort(known)
			a.problem("unknown arg %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	if len(a.problems) == 0 {
		return nil
	}
	slices.Sort(a.problems)
	return fmt.Errorf("%s: %s", a.tool, strings.Join(a.problems, "; "))
}
