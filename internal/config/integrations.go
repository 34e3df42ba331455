package config

import (
	"github.com/spf13/viper"
)

// Integrations is the `integrations:` section. Tokens and API URLs may also
// come from the environment variables named on each field.
type Integrations struct {
	Vercel       VercelConfig              `mapstructure:"vercel"`
	GitHub       GitHubConfig              `mapstructure:"github"`
	DigitalOcean DigitalOceanConfig        `mapstructure:"digitalocean"`
	Supabase     map[string]SupabaseTarget `mapstructure:"supabase"` // per env (prod, staging, dev); default: the project opsd runs against
	URLAllowlist []string                  `mapstructure:"url_allowlist"`
	Defaults     map[string]any            `mapstructure:"defaults"` // run input defaults (repo, branch, target, ...)
}

// VercelConfig: token (VERCEL_TOKEN), team (VERCEL_TEAM_ID), API URL
// (VERCEL_API_URL, default https://api.vercel.com), and the project deployed
// per environment.
type VercelConfig struct {
	Token    string            `mapstructure:"token"`
	TeamID   string            `mapstructure:"team_id"`
	APIURL   string            `mapstructure:"api_url"`
	Project  string            `mapstructure:"project"`
	Projects map[string]string `mapstructure:"projects"` // env -> project, wins over project
}

// GitHubConfig: token (GITHUB_TOKEN), API URL (GITHUB_API_URL), the default
// repository and the migrations workflow deploys may dispatch.
type GitHubConfig struct {
	Token              string `mapstructure:"token"`
	APIURL             string `mapstructure:"api_url"`
	Repo               string `mapstructure:"repo"`
	MigrationsWorkflow string `mapstructure:"migrations_workflow"`
}

// DigitalOceanConfig: token (DIGITALOCEAN_TOKEN), API URL
// (DIGITALOCEAN_API_URL), droplets checked by name or tag, and URLs whose
// HTTP health is checked.
type DigitalOceanConfig struct {
	Token      string   `mapstructure:"token"`
	APIURL     string   `mapstructure:"api_url"`
	Droplets   []string `mapstructure:"droplets"`
	Tag        string   `mapstructure:"tag"`
	HealthURLs []string `mapstructure:"health_urls"`
}

// SupabaseTarget is one environment's Supabase project.
type SupabaseTarget struct {
	URL         string `mapstructure:"url"`
	Key         string `mapstructure:"key"`          // service-role or anon key for health checks
	DatabaseURL string `mapstructure:"database_url"` // for schema_sync introspection
}

// Notifications is the `notifications:` section.
type Notifications struct {
	Slack    []string `mapstructure:"slack"`    // Slack-compatible incoming webhook URLs
	Webhooks []string `mapstructure:"webhooks"` // generic JSON webhooks
}

func bindIntegrationEnv(v *viper.Viper) {
	for key, env := range map[string]string{
		"integrations.vercel.token":         "VERCEL_TOKEN",
		"integrations.vercel.team_id":       "VERCEL_TEAM_ID",
		"integrations.vercel.api_url":       "VERCEL_API_URL",
		"integrations.github.token":         "GITHUB_TOKEN",
		"integrations.github.api_url":       "GITHUB_API_URL",
		"integrations.digitalocean.token":   "DIGITALOCEAN_TOKEN",
		"integrations.digitalocean.api_url": "DIGITALOCEAN_API_URL",
	} {
		_ = v.BindEnv(key, env)
	}
}

func (i Integrations) secrets() []string {
	out := []string{i.Vercel.Token, i.GitHub.Token, i.DigitalOcean.Token}
	for _, t := range i.Supabase {
		out = append(out, t.Key, databasePassword(t.DatabaseURL))
	}
	return out
}

func (n Notifications) secrets() []string {
	// Webhook URLs carry their secret in the path.
	return append(append([]string{}, n.Slack...), n.Webhooks...)
}
