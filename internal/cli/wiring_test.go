package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/internal/config"
	"github.com/opscontrolroom/opsd/internal/redact"
	"github.com/opscontrolroom/opsd/runbooks"
)

func TestWiring(t *testing.T) {
	e := &env{cfg: &config.Config{SupabaseURL: "https://x.supabase.co"}, log: zap.NewNop(), redactor: redact.New()}
	r, err := newResolver(e, nil)
	require.NoError(t, err)
	rb := r.(*runbooks.Resolver)
	for _, k := range []string{"deploy", "healthcheck", "spec", "incident", "schema_sync"} {
		require.Contains(t, rb.Kinds, k)
	}
	for _, tool := range []string{"vercel.deploy", "vercel.latest", "github.dispatch", "github.pr", "github.issue",
		"digitalocean.droplets", "http.check", "supabase.health"} {
		require.Contains(t, rb.Tools, tool)
	}

	require.Nil(t, newNotifier(e), "no webhooks: no notifier (and no typed nil)")
	e.cfg.Notifications.Slack = []string{"https://hooks.slack.com/services/T/B/x"}
	require.NotNil(t, newNotifier(e))
}

// TestWiringMapsConfiguration: the runbooks get every integration setting
// and the policy through their own option types, and the executor gets
// approval_envs and allow_cross_env.
func TestWiringMapsConfiguration(t *testing.T) {
	in := config.Integrations{
		Vercel: config.VercelConfig{Token: "vt", TeamID: "team", APIURL: "https://v.example", Project: "web",
			Projects: map[string]string{"prod": "web", "dev": "web-dev"}},
		GitHub:       config.GitHubConfig{Token: "gt", APIURL: "https://g.example", Repo: "acme/web", MigrationsWorkflow: "migrate.yml"},
		DigitalOcean: config.DigitalOceanConfig{Token: "dt", APIURL: "https://d.example", Droplets: []string{"web-1"}, Tag: "web", HealthURLs: []string{"https://acme.example/up"}},
		Supabase:     map[string]config.SupabaseTarget{"staging": {URL: "https://s.example", Key: "sk", DatabaseURL: "postgres://s"}},
		URLAllowlist: []string{"status.internal"},
		Defaults:     map[string]any{"branch": "main"},
	}
	require.Equal(t, runbooks.Integrations{
		Vercel: runbooks.VercelOptions{Token: "vt", TeamID: "team", APIURL: "https://v.example", Project: "web",
			Projects: map[string]string{"prod": "web", "dev": "web-dev"}},
		GitHub:       runbooks.GitHubOptions{Token: "gt", APIURL: "https://g.example", Repo: "acme/web", MigrationsWorkflow: "migrate.yml"},
		DigitalOcean: runbooks.DigitalOceanOptions{Token: "dt", APIURL: "https://d.example", Droplets: []string{"web-1"}, Tag: "web", HealthURLs: []string{"https://acme.example/up"}},
		Supabase:     map[string]runbooks.SupabaseTarget{"staging": {URL: "https://s.example", Key: "sk", DatabaseURL: "postgres://s"}},
		URLAllowlist: []string{"status.internal"},
		Defaults:     map[string]any{"branch": "main"},
	}, runbookIntegrations(in))

	pol := config.Policy{AllowCrossEnv: true,
		Envs:       map[string]config.Allowlist{"dev": {GitHubRepos: []string{"acme/sandbox"}, Databases: []string{"staging"}}},
		Production: config.Allowlist{VercelProjects: []string{"web"}, GitHubRepos: []string{"acme/web"}, Droplets: []string{"db-1"}, DropletTags: []string{"prod"}, Databases: []string{"prod"}}}
	require.Equal(t, runbooks.Policy{
		Envs:       map[string]runbooks.Allowlist{"dev": {GitHubRepos: []string{"acme/sandbox"}, Databases: []string{"staging"}}},
		Production: runbooks.Allowlist{VercelProjects: []string{"web"}, GitHubRepos: []string{"acme/web"}, Droplets: []string{"db-1"}, DropletTags: []string{"prod"}, Databases: []string{"prod"}},
	}, runbookPolicy(pol))

	e := &env{cfg: &config.Config{WorkerID: "w", Lanes: []string{"A"}, ApprovalEnvs: []string{"prod", "staging"}, Policy: pol},
		log: zap.NewNop(), redactor: redact.New()}
	p := daemonConfig(e).Policy
	require.NotNil(t, p)
	require.Equal(t, []string{"prod", "staging"}, p.ApprovalEnvs)
	require.True(t, p.AllowCrossEnv)
}
