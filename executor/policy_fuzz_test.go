package executor_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/opscontrolroom/opsd/executor"
)

// FuzzParsePlan: runs.plan comes from the browser. Whatever it holds,
// ParsePlan and the approval policy must not panic; a plan that is not a
// RunbookPlan is refused with an error that says so.
func FuzzParsePlan(f *testing.F) {
	for _, s := range []string{
		"", "null", "{}", "[]", `"plan"`, "7", "{", `{"inputs":null,"risks":null}`,
		`{"id":"p1","kind":"deploy","title":"Deploy web","summary":"s","inputs":[{"key":"env","label":"Env","type":"select","options":["prod","dev"],"value":"prod"}],"risks":[{"level":"block","code":"DB","message":"migration"}],"integrations":["Vercel","GitHub"]}`,
		`{"inputs":[{"key":"runMigrations","type":"boolean","value":true},{"key":"notes","type":"text","value":null}]}`,
		`{"risks":[{"level":"BLOCK","code":"x","message":"y"},{"level":"warn"}]}`,
		`{"inputs":[{"key":1}]}`, `{"inputs":{"key":"x"}}`, `{"risks":[null,{}]}`, `{"options":[1,2]}`,
		`{"inputs":[{"key":"a","options":"x"}]}`, "\xff\xfe", `{"title":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := executor.ParsePlan(raw)
		if err != nil {
			if p != nil {
				t.Fatalf("ParsePlan returned a plan and an error: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "runs.plan is not a RunbookPlan: ") {
				t.Fatalf("error does not say what was wrong: %q", err)
			}
		} else {
			if p == nil {
				t.Fatal("ParsePlan returned neither a plan nor an error")
			}
			if _, err := json.Marshal(p); err != nil {
				t.Fatalf("a parsed plan does not encode again: %v", err)
			}
		}
		run := &executor.Run{Kind: "deploy", Env: "dev", Plan: raw}
		need, why := executor.DefaultApprovalPolicy(run)
		if need && why == "" {
			t.Fatal("approval needed without a reason")
		}
		if err == nil {
			blocked := false
			for _, r := range p.Risks {
				blocked = blocked || strings.EqualFold(r.Level, "block")
			}
			if blocked != need {
				t.Fatalf("block risk %v but approval needed %v (%s)", blocked, need, why)
			}
		}
	})
}

// FuzzMergeInputs: runs.input and runs.plan both come from the browser.
// Merging never panics, runs.input wins over the plan's values, and a plan
// input without a key or value contributes nothing.
func FuzzMergeInputs(f *testing.F) {
	plan := `{"inputs":[{"key":"env","value":"prod"},{"key":"repo","value":"acme/web"},{"key":"","value":"x"},{"key":"notes","value":null}]}`
	for _, s := range [][2]string{
		{"", ""}, {"null", "null"}, {plan, `{"env":"dev"}`}, {plan, `{"repo":null}`}, {plan, "[]"},
		{plan, `{"":1}`}, {"{", "{"}, {`{"inputs":[{"key":"a","value":{"b":[1,2]}}]}`, `{"a":{"b":3}}`},
		{plan, `{"env":"staging","runMigrations":true,"target":7}`}, {`[]`, `"x"`}, {plan, "\xff"},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, planRaw, inputRaw []byte) {
		run := &executor.Run{Plan: planRaw, Input: inputRaw}
		got := executor.MergeInputs(run)
		if got == nil {
			t.Fatal("MergeInputs returned nil")
		}
		var input map[string]any
		inputOK := len(inputRaw) > 0 && json.Unmarshal(inputRaw, &input) == nil
		if inputOK {
			for k, v := range input {
				if !reflect.DeepEqual(got[k], v) {
					t.Fatalf("runs.input[%q] = %v but the merge has %v", k, v, got[k])
				}
			}
		}
		p, err := executor.ParsePlan(planRaw)
		if err != nil {
			if !inputOK && len(got) != 0 {
				t.Fatalf("nothing parseable, yet the merge has %v", got)
			}
			return
		}
		for _, in := range p.Inputs {
			if _, overridden := input[in.Key]; overridden || in.Key == "" || in.Value == nil {
				continue
			}
			if _, ok := got[in.Key]; !ok {
				t.Fatalf("plan input %q is missing from the merge", in.Key)
			}
		}
		for k := range got {
			if _, fromInput := input[k]; !fromInput && k == "" {
				t.Fatal("a plan input without a key made it into the merge")
			}
		}
		// The merge must encode: it is shown in events and passed to runbooks.
		if _, err := json.Marshal(got); err != nil {
			t.Fatalf("merged inputs do not encode: %v", err)
		}
	})
}
