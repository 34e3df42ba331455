package runbooks

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var parseSeeds = []string{
	noopSeed,
	toolsTemplate,
	"version: 1\nsteps: []\n",
	"version: 2\nsteps:\n  - {id: a, kind: system, action: noop}\n",
	"version: 1\ninputs:\n  - {key: env, type: select, options: [prod, dev], default: dev}\nsteps:\n  - {id: a, kind: tool, tool: supabase, action: health, args: {env: \"{{ inputs.env }}\"}}\n",
	"version: 1\nsteps:\n  - {id: a, kind: shell, action: rm}\n",
	"version: 1\nsteps:\n  - {id: a, kind: tool, tool: http, action: check, args: {url: \"{{inputs.missing}}\"}}\n",
	"version: 1\ninputs: [{key: a}]\nsteps:\n  - {id: x, kind: system, action: sleep, args: {duration: \"{{ inputs.a }}s\"}}\n",
	"version: 1\nsteps:\n  - {id: a, kind: system, action: noop, args: {m: [\"{{env.HOME}}\", {n: \"{{inputs.}}\"}]}}\n",
	"version: 1\nsteps:\n  - &a {id: a, kind: system, action: noop}\n  - *a\n",
	"version: 1\nbogus: true\nsteps: []\n",
	"version: 1\nretry: {max_attempts: 3, backoff: 5s}\nsteps:\n  - {id: a, kind: system, action: noop}\n",
	"version: 1\nretry: {max_attempts: 11, backoff: 0s}\nsteps:\n  - {id: a, kind: system, action: noop}\n",
	"{{",
	"",
}

const noopSeed = `version: 1
inputs:
  - {key: project, label: Vercel project, type: string, required: true}
steps:
  - {id: build, title: Build, kind: tool, tool: vercel, action: deploy, args: {project: "{{inputs.project}}", ref: main}}
`

// FuzzParseTemplate: the parser never panics, and what it accepts keeps its
// promises: version 1, unique valid step ids, known actions, and args whose
// placeholders all resolve once every declared input has a value.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add(s)
	}
	tools := newTools(&clients{})
	f.Fuzz(func(t *testing.T, src string) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				panic(fmt.Sprintf("ParseTemplate hangs on %q", src))
			}
		}()
		tpl, err := ParseTemplate(src, tools.Has)
		if err != nil {
			if tpl != nil {
				t.Fatalf("error %v with a template", err)
			}
			return
		}
		if tpl.Version != 1 || len(tpl.Steps) == 0 {
			t.Fatalf("accepted version %d with %d steps", tpl.Version, len(tpl.Steps))
		}
		inputs := map[string]any{}
		for _, in := range tpl.Inputs {
			inputs[in.Key] = "v"
		}
		ids := map[string]bool{}
		for _, s := range tpl.Steps {
			if ids[s.ID] || !stepIDPattern.MatchString(s.ID) {
				t.Fatalf("accepted step id %q", s.ID)
			}
			ids[s.ID] = true
			switch s.Kind {
			case "system":
				if _, ok := systemActions[s.Action]; !ok {
					t.Fatalf("accepted system action %q", s.Action)
				}
			case "tool":
				if !tools.Has(s.Tool, s.Action) {
					t.Fatalf("accepted tool action %s.%s", s.Tool, s.Action)
				}
			default:
				t.Fatalf("accepted kind %q", s.Kind)
			}
			if _, err := Interpolate(s.Args, inputs); err != nil {
				t.Fatalf("step %s: placeholders accepted by the parser do not resolve: %v", s.ID, err)
			}
		}
		if p, ok := tpl.RetryPolicy(); ok && (p.MaxAttempts < 1 || p.MaxAttempts > 10 || p.Backoff < time.Second || p.Backoff > 24*time.Hour) {
			t.Fatalf("accepted retry policy %+v", p)
		}
		if _, err := tpl.ResolveInputs(map[string]any{}); err != nil && !strings.Contains(err.Error(), "required") {
			t.Fatalf("defaults of accepted inputs do not resolve: %v", err)
		}
	})
}

// FuzzInterpolate: interpolation never panics, never turns a missing input
// into an empty string, keeps text without placeholders as it is, and gives
// a lone placeholder the input's value.
func FuzzInterpolate(f *testing.F) {
	for _, s := range []struct{ arg, key, value string }{
		{"{{inputs.project}}", "project", "web"},
		{"https://{{ inputs.host }}/health?x={{inputs.host}}", "host", "example.com"},
		{"{{inputs.missing}}", "project", "web"},
		{"{{ env.HOME }}", "env", "prod"},
		{"plain text", "a", "b"},
		{"{{inputs.a}}{{inputs.a}}", "a", "{{inputs.a}}"},
		{"{{{{inputs.a}}}}", "a", "x"},
		{"{{inputs.a", "a", "x"},
		{"", "", ""},
	} {
		f.Add(s.arg, s.key, s.value)
	}
	f.Fuzz(func(t *testing.T, arg, key, value string) {
		inputs := map[string]any{key: value}
		args := map[string]any{"s": arg, "list": []any{arg, 1.0, map[string]any{"deep": arg}}}
		out, err := Interpolate(args, inputs)
		matches := placeholder.FindAllStringSubmatch(arg, -1)
		missing := false
		for _, m := range matches {
			if _, lerr := lookupInput(m[1], inputs); lerr != nil {
				missing = true
			}
		}
		if missing != (err != nil) {
			t.Fatalf("arg %q inputs %v: missing=%v but err=%v", arg, inputs, missing, err)
		}
		if err != nil {
			if out != nil {
				t.Fatalf("error with output %v", out)
			}
			return
		}
		got := out["s"]
		switch {
		case len(matches) == 0 && got != arg:
			t.Fatalf("text without placeholders changed: %q -> %q", arg, got)
		case len(matches) == 1 && matches[0][0] == arg && got != value:
			t.Fatalf("lone placeholder %q gave %v, want %q", arg, got, value)
		}
		deep := out["list"].([]any)[2].(map[string]any)["deep"]
		if deep != got {
			t.Fatalf("nested interpolation differs: %v vs %v", deep, got)
		}
	})
}
