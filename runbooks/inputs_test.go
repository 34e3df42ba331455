package runbooks

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

func paramsFor(input, plan string, defaults map[string]any) *params {
	run := &executor.Run{ID: "r", Env: "staging", Kind: "deploy", Input: json.RawMessage(input)}
	if plan != "" {
		run.Plan = json.RawMessage(plan)
	}
	c := &clients{cfg: Integrations{Defaults: defaults}}
	return c.params(&executor.RunContext{Run: run, Inputs: executor.MergeInputs(run)})
}

// TestInputPrecedence: runs.input, then the plan's input values, then
// integrations.defaults (whose keys viper lower-cases), then configuration.
func TestInputPrecedence(t *testing.T) {
	t.Parallel()
	plan := `{"inputs":[{"key":"repo","value":"plan/repo"},{"key":"branch","value":"plan-branch"},{"key":"runMigrations","value":true}]}`
	defaults := map[string]any{"repo": "def/repo", "branch": "def-branch", "target": "def-target", "runmigrations": false, "notes": "n"}
	p := paramsFor(`{"repo":"input/repo"}`, plan, defaults)
	require.Equal(t, "input/repo", p.str([]string{"repo"}, "config/repo"))
	require.Equal(t, "plan-branch", p.str([]string{"branch"}))
	require.Equal(t, "def-target", p.str([]string{"target"}))
	require.True(t, p.boolean("runMigrations", false), "the plan's value wins over the default")
	require.Equal(t, "config/x", p.str([]string{"missing"}, "", "config/x"))
	require.Equal(t, "fallback", paramsFor(`{}`, "", nil).str([]string{"project"}, "", "fallback"))
	require.NoError(t, p.err())
}

func TestInputProblems(t *testing.T) {
	t.Parallel()
	p := paramsFor(`[1,2]`, `{"inputs": 5}`, nil)
	err := p.err()
	require.True(t, errors.Is(err, executor.ErrValidation))
	require.ErrorContains(t, err, "runs.input must be a JSON object of inputs")
	require.ErrorContains(t, err, "runs.plan is not a RunbookPlan")

	p = paramsFor(`{"repo":{"a":1},"flag":"perhaps","urls":[1],"env":"qa","branch":"a..b"}`, "", nil)
	p.str([]string{"repo"})
	p.boolean("flag", false)
	p.list("urls")
	p.shape("branch", p.str([]string{"branch"}), refPattern, expectRef)
	err = p.err()
	require.ErrorContains(t, err, `input "repo" must be text, got an object {"a":1}`)
	require.ErrorContains(t, err, `input "flag" must be true or false, got text "perhaps"`)
	require.ErrorContains(t, err, `input "urls"[0] must be text, got a number 1`)
	require.ErrorContains(t, err, `input "env" must be one of prod, staging, dev, got qa`)
	require.ErrorContains(t, err, `input "branch" must be a branch, tag or commit`)

	p = paramsFor(`{"env":"prod"}`, "", nil)
	require.NoError(t, p.err())
	require.Equal(t, []string{"input env = prod differs from the run's env staging; the run's env is used"}, p.warnings)
}

func TestVercelTarget(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ target, env, want string }{
		{"", "prod", "production"}, {"", "staging", "staging"}, {"", "dev", ""},
		{"preview", "prod", ""}, {"production", "dev", "production"}, {"prod", "dev", "production"},
	} {
		got, ok := vercelTarget(c.target, c.env)
		require.True(t, ok)
		require.Equal(t, c.want, got, "%+v", c)
	}
	_, ok := vercelTarget("moon", "dev")
	require.False(t, ok)
}

func TestGitHubWebURL(t *testing.T) {
	t.Parallel()
	require.Equal(t, "https://github.com", githubWebURL(""))
	require.Equal(t, "https://github.com", githubWebURL("https://api.github.com/"))
	require.Equal(t, "https://ghe.example.com", githubWebURL("https://ghe.example.com/api/v3/"))
}
