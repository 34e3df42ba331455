package executor_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

func TestPolicyDecidesOnTargets(t *testing.T) {
	t.Parallel()
	vercelProd := executor.Target{Kind: "Vercel target", Name: "production", Input: `input "target"`, Env: "prod", Production: true, Write: true}
	stagingDB := executor.Target{Kind: "database", Name: "staging", Env: "staging"}
	markedRepo := executor.Target{Kind: "GitHub repository", Name: "acme/web", Env: "prod", Production: true, Write: true}
	plainRepo := executor.Target{Kind: "GitHub repository", Name: "acme/web", Write: true}
	stagingProject := executor.Target{Kind: "Vercel project", Name: "web-staging", Env: "staging", Write: true}
	block := []byte(`{"risks":[{"level":"BLOCK","code":"DATA","message":"drops a table"}]}`)

	for _, c := range []struct {
		name     string
		policy   executor.Policy
		run      executor.Run
		targets  []executor.Target
		refused  string // substring of the CheckTargets error; "" allowed
		approval string // substring of the approval reason; "" none needed
	}{
		{name: "dev label aimed at production", policy: *executor.DefaultPolicy(), run: executor.Run{Kind: "deploy", Env: "dev"},
			targets:  []executor.Target{vercelProd},
			refused:  `the run's env is dev but it would write to another env's target: Vercel target production (input "target") belongs to env prod`,
			approval: "it writes to production"},
		{name: "cross env allowed waits for approval", policy: executor.Policy{ApprovalEnvs: []string{"prod"}, AllowCrossEnv: true},
			run: executor.Run{Kind: "deploy", Env: "dev"}, targets: []executor.Target{vercelProd},
			approval: `it writes to production: Vercel target production (input "target")`},
		{name: "production target needs approval even with no approval env", policy: executor.Policy{ApprovalEnvs: []string{}},
			run: executor.Run{Kind: "deploy", Env: "prod"}, targets: []executor.Target{vercelProd},
			approval: "it writes to production: Vercel target production"},
		{name: "prod deploy label still needs approval", policy: *executor.DefaultPolicy(), run: executor.Run{Kind: "deploy", Env: "prod"},
			approval: "deploys to prod need approval (approval_envs)"},
		{name: "marked repo in a prod spec", policy: *executor.DefaultPolicy(), run: executor.Run{Kind: "spec", Env: "prod"},
			targets: []executor.Target{markedRepo}, approval: "it writes to production: GitHub repository acme/web"},
		{name: "unmarked repo in a prod incident", policy: *executor.DefaultPolicy(), run: executor.Run{Kind: "incident", Env: "prod"},
			targets: []executor.Target{plainRepo}},
		{name: "reading another env is not a cross-env write", policy: *executor.DefaultPolicy(), run: executor.Run{Kind: "schema_sync", Env: "dev"},
			targets: []executor.Target{stagingDB}},
		{name: "a target of an approval env is production", policy: executor.Policy{ApprovalEnvs: []string{"prod", "staging"}},
			run: executor.Run{Kind: "healthcheck", Env: "staging"}, targets: []executor.Target{stagingProject},
			approval: "it writes to production: Vercel project web-staging"},
		{name: "block risk", policy: *executor.DefaultPolicy(), run: executor.Run{Kind: "healthcheck", Env: "dev", Plan: block},
			approval: "the plan has a blocking risk: drops a table (DATA)"},
		{name: "preview deploy from dev", policy: *executor.DefaultPolicy(), run: executor.Run{Kind: "deploy", Env: "dev"},
			targets: []executor.Target{{Kind: "Vercel target", Name: "preview", Write: true}, plainRepo}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.policy.CheckTargets(&c.run, c.targets)
			if c.refused == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, c.refused)
				require.True(t, errors.Is(err, executor.ErrValidation))
			}
			need, why := c.policy.NeedsApproval(&c.run, c.targets)
			require.Equal(t, c.approval != "", need, why)
			require.Contains(t, why, c.approval)
		})
	}
}
