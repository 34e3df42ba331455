package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/config"
)

func TestPolicySection(t *testing.T) {
	file := `policy:
  allow_cross_env: false
  envs:
    dev: {github_repos: [acme/sandbox], vercel_projects: [web-preview], databases: [staging]}
    prod: {droplets: [web-1], droplet_tags: [web]}
  production: {vercel_projects: [web], github_repos: [acme/web], databases: [prod]}
`
	c, err := load(t, nil, nil, file)
	require.NoError(t, err)
	require.False(t, c.Policy.AllowCrossEnv)
	require.Equal(t, config.Allowlist{GitHubRepos: []string{"acme/sandbox"}, VercelProjects: []string{"web-preview"}, Databases: []string{"staging"}}, c.Policy.Envs["dev"])
	require.Equal(t, []string{"web-1"}, c.Policy.Envs["prod"].Droplets)
	require.Equal(t, []string{"acme/web"}, c.Policy.Production.GitHubRepos)

	c, err = load(t, nil, map[string]string{"OPSD_POLICY_ALLOW_CROSS_ENV": "true"}, file)
	require.NoError(t, err)
	require.True(t, c.Policy.AllowCrossEnv, "environment over file")

	c, err = load(t, nil, nil, "")
	require.NoError(t, err)
	require.Equal(t, config.Policy{}, c.Policy, "default: integrations alone, no cross-env runs")
}

func TestBadPolicyNamesTheSetting(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"policy:\n  envs:\n    qa: {github_repos: [acme/web]}\n", `policy.envs.qa: unknown env "qa" (use prod, staging or dev)`},
		{"policy:\n  envs:\n    dev: {github_repo: [acme/web]}\n", `unknown option "policy.envs.dev.github_repo"`},
		{"policy:\n  allow_crossenv: true\n", `unknown option "policy.allow_crossenv"`},
		{"policy:\n  production: {repos: [acme/web]}\n", `unknown option "policy.production.repos"`},
		{"policy:\n  envs:\n    dev: {github_repos: [acme]}\n", `policy.envs.dev.github_repos[0] = "acme": must be a GitHub repository "owner/name"`},
		{"policy:\n  envs:\n    staging: {databases: [prod, qa]}\n", `policy.envs.staging.databases[1] = "qa": must be the env of a database: prod, staging or dev`},
		{"policy:\n  production: {vercel_projects: [\"web app\"]}\n", `policy.production.vercel_projects[0] = "web app": must be a Vercel project name or id`},
		{"policy:\n  production: {github_repos: [acme/../x]}\n", `policy.production.github_repos[0] = "acme/../x"`},
		{"policy:\n  allow_cross_env: maybe\n", `policy.allow_cross_env (env OPSD_POLICY_ALLOW_CROSS_ENV) = "maybe": must be true or false`},
	} {
		_, err := load(t, nil, nil, c.file)
		require.ErrorContains(t, err, c.want, c.file)
	}
}
