package cli

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/config"
	"github.com/opscontrolroom/opsd/internal/notify"
	"github.com/opscontrolroom/opsd/runbooks"
	"github.com/opscontrolroom/opsd/supabase/migrations"
)

// newResolver wires the runbooks with the configured integrations. The
// project opsd runs against is the Supabase target of every env that has
// none of its own under integrations.supabase.
func newResolver(e *env, store executor.Store) (executor.Resolver, error) {
	return runbooks.New(runbooks.Deps{
		Store:        store,
		Integrations: runbookIntegrations(e.cfg.Integrations),
		Policy:       runbookPolicy(e.cfg.Policy),
		DefaultSupabase: runbooks.SupabaseTarget{
			URL: e.cfg.SupabaseURL, Key: e.cfg.SupabaseServiceRoleKey, DatabaseURL: e.cfg.DatabaseURL,
		},
		Redactor: e.redactor,
	}), nil
}

// runbookIntegrations maps the `integrations:` section onto the runbooks'
// own options, so the domain does not depend on the CLI's configuration.
func runbookIntegrations(in config.Integrations) runbooks.Integrations {
	out := runbooks.Integrations{
		Vercel: runbooks.VercelOptions{Token: in.Vercel.Token, TeamID: in.Vercel.TeamID, APIURL: in.Vercel.APIURL,
			Project: in.Vercel.Project, Projects: in.Vercel.Projects},
		GitHub: runbooks.GitHubOptions{Token: in.GitHub.Token, APIURL: in.GitHub.APIURL, Repo: in.GitHub.Repo,
			MigrationsWorkflow: in.GitHub.MigrationsWorkflow},
		DigitalOcean: runbooks.DigitalOceanOptions{Token: in.DigitalOcean.Token, APIURL: in.DigitalOcean.APIURL,
			Droplets: in.DigitalOcean.Droplets, Tag: in.DigitalOcean.Tag, HealthURLs: in.DigitalOcean.HealthURLs},
		URLAllowlist: in.URLAllowlist,
		Defaults:     in.Defaults,
	}
	if in.Supabase != nil {
		out.Supabase = make(map[string]runbooks.SupabaseTarget, len(in.Supabase))
		for env, t := range in.Supabase {
			out.Supabase[env] = runbooks.SupabaseTarget{URL: t.URL, Key: t.Key, DatabaseURL: t.DatabaseURL}
		}
	}
	return out
}

// runbookPolicy maps the `policy:` section's allowlists onto the runbooks'.
func runbookPolicy(p config.Policy) runbooks.Policy {
	list := func(a config.Allowlist) runbooks.Allowlist {
		return runbooks.Allowlist{VercelProjects: a.VercelProjects, GitHubRepos: a.GitHubRepos,
			Droplets: a.Droplets, DropletTags: a.DropletTags, Databases: a.Databases}
	}
	out := runbooks.Policy{Production: list(p.Production)}
	if p.Envs != nil {
		out.Envs = make(map[string]runbooks.Allowlist, len(p.Envs))
		for env, a := range p.Envs {
			out.Envs[env] = list(a)
		}
	}
	return out
}

// newNotifier returns the notifier of the `notifications:` webhooks, or nil
// when none is configured.
func newNotifier(e *env) executor.Notifier {
	n := notify.New(e.cfg.Notifications, notify.Options{Redactor: e.redactor})
	if n == nil {
		return nil // not a typed nil in the interface
	}
	return n
}

func migrateURL(ctx context.Context, url string, log *zap.Logger) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to migrate: %w", err)
	}
	defer conn.Close(ctx)
	applied, err := migrations.Migrate(ctx, conn, migrations.BootstrapAuto)
	for _, m := range applied {
		log.Info("applied migration", zap.String("version", m.Version), zap.String("name", m.Name))
	}
	return err
}
