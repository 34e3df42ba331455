package runbooks

// Integrations are the integrations the runbooks reach: tokens, API URLs,
// the targets of each env, the URL allowlist and run input defaults. The
// CLI fills them from its `integrations:` configuration section.
type Integrations struct {
	Vercel       VercelOptions
	GitHub       GitHubOptions
	DigitalOcean DigitalOceanOptions
	Supabase     map[string]SupabaseTarget // per env (prod, staging, dev); default: Deps.DefaultSupabase
	URLAllowlist []string                  // hosts that URLs from run inputs and templates may reach
	Defaults     map[string]any            // run input defaults (repo, branch, target, ...)
}

// VercelOptions: token, team, API URL (default https://api.vercel.com), and
// the project deployed per env.
type VercelOptions struct {
	Token    string
	TeamID   string
	APIURL   string
	Project  string            // the project of every env without one in Projects
	Projects map[string]string // env -> project, wins over Project
}

// GitHubOptions: token, API URL, the default repository and the migrations
// workflow deploys may dispatch.
type GitHubOptions struct {
	Token              string
	APIURL             string
	Repo               string
	MigrationsWorkflow string
}

// DigitalOceanOptions: token, API URL, droplets checked by name or tag, and
// URLs whose HTTP health is checked.
type DigitalOceanOptions struct {
	Token      string
	APIURL     string
	Droplets   []string
	Tag        string
	HealthURLs []string
}

// SupabaseTarget is one env's Supabase project.
type SupabaseTarget struct {
	URL         string
	Key         string // service-role or anon key for health checks
	DatabaseURL string // for schema_sync introspection
}

// Policy says what runs of each env may touch beyond what Integrations
// names for that env, and which targets are production.
type Policy struct {
	// Envs adds, per env (prod, staging, dev), what its runs may touch on
	// top of the defaults: the env's Vercel project (Vercel.Projects[env],
	// else Vercel.Project), the GitHub repository (GitHub.Repo and
	// Defaults["repo"]), the droplets and tag of DigitalOcean, and the env's
	// own database.
	Envs map[string]Allowlist
	// Production marks projects, repositories and databases as production:
	// a write to one waits for approval, and a run of another env may not
	// write to one unless the executor's policy allows cross-env runs.
	Production Allowlist
}

// Allowlist names Vercel projects (name or id), GitHub repositories
// (owner/name), droplets, droplet tags and databases (by env: prod,
// staging, dev).
type Allowlist struct {
	VercelProjects []string
	GitHubRepos    []string
	Droplets       []string
	DropletTags    []string
	Databases      []string
}
