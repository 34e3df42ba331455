package runbooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/digitalocean"
	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/supabaseadapter"
	"github.com/opscontrolroom/opsd/adapters/vercel"
	"github.com/opscontrolroom/opsd/executor"
)

// Deps is what the runbooks are built from.
type Deps struct {
	// Store is the daemon's store (templates, spec_docs).
	Store executor.Store
	// Integrations are tokens, API URLs, targets per env, the URL allowlist
	// and run input defaults.
	Integrations Integrations
	// Policy widens, per env, what runs may touch beyond what Integrations
	// names for the env, and marks production targets.
	Policy Policy
	// DefaultSupabase is the project opsd runs against (SUPABASE_URL,
	// SUPABASE_SERVICE_ROLE_KEY, DATABASE_URL), used for an env that has no
	// integrations.supabase.<env> target of its own.
	DefaultSupabase SupabaseTarget
	// Redactor cleans text that leaves by other ways than the run's events
	// and artifacts (which the executor redacts): GitHub issue, pull request
	// and commit contents, and spec_docs rows. Default: no redaction.
	Redactor executor.Redactor
	// HTTP is the base of every adapter's options (per-attempt timeout,
	// retries, backoff); tokens and base URLs come from Integrations.
	HTTP adapters.Options
	// Poll is how often deployments and workflow runs are polled while
	// waiting for them. Default 5s.
	Poll time.Duration
	// Now is the clock, for branch names and migration file names. Default time.Now.
	Now func() time.Time
}

// New returns the resolver of every kind and template tool action, with
// adapters built lazily from d.Integrations on first use.
func New(d Deps) *Resolver {
	if d.Poll <= 0 {
		d.Poll = 5 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Redactor == nil {
		d.Redactor = noRedaction{}
	}
	c := &clients{deps: d, cfg: d.Integrations, supabase: map[string]*supabaseadapter.Client{}}
	return &Resolver{
		Store:   d.Store,
		clients: c,
		Tools:   newTools(c),
		Kinds: map[string]KindFunc{
			"deploy":      func(run *executor.Run) executor.Runbook { return &deployRunbook{c: c, run: run} },
			"healthcheck": func(run *executor.Run) executor.Runbook { return &healthRunbook{c: c, run: run} },
			"spec":        func(run *executor.Run) executor.Runbook { return &specRunbook{c: c, run: run} },
			"incident":    func(run *executor.Run) executor.Runbook { return &incidentRunbook{c: c, run: run} },
			"schema_sync": func(run *executor.Run) executor.Runbook { return &schemaSyncRunbook{c: c, run: run} },
		},
	}
}

type noRedaction struct{}

func (noRedaction) String(s string) string                 { return s }
func (noRedaction) JSON(b json.RawMessage) json.RawMessage { return b }

// clients builds each adapter once, on first use, so a kind that does not
// need an integration never requires it to be configured.
type clients struct {
	deps Deps
	cfg  Integrations

	mu       sync.Mutex
	vercel   *vercel.Client
	github   *github.Client
	do       *digitalocean.Client
	supabase map[string]*supabaseadapter.Client
}

// notConfiguredError says which integration is missing and what to set; it
// wraps adapters.ErrNotConfigured.
type notConfiguredError struct{ what, set string }

func (e *notConfiguredError) Error() string { return e.what + " is not configured: set " + e.set }
func (e *notConfiguredError) Unwrap() error { return adapters.ErrNotConfigured }

func errNotConfigured(what, set string) error { return &notConfiguredError{what: what, set: set} }

func (c *clients) options(token, baseURL string) adapters.Options {
	o := c.deps.HTTP
	o.Token, o.BaseURL = token, baseURL
	return o
}

// Vercel returns the Vercel client, or an error naming VERCEL_TOKEN.
func (c *clients) Vercel() (*vercel.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vercel != nil {
		return c.vercel, nil
	}
	v := c.cfg.Vercel
	if v.Token == "" {
		return nil, errNotConfigured("Vercel", "VERCEL_TOKEN (integrations.vercel.token)")
	}
	cl, err := vercel.New(c.options(v.Token, v.APIURL), v.TeamID)
	if err != nil {
		return nil, fmt.Errorf("Vercel (integrations.vercel.api_url / VERCEL_API_URL): %w", err)
	}
	c.vercel = cl
	return cl, nil
}

// GitHub returns the GitHub client, or an error naming GITHUB_TOKEN.
func (c *clients) GitHub() (*github.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.github != nil {
		return c.github, nil
	}
	g := c.cfg.GitHub
	if g.Token == "" {
		return nil, errNotConfigured("GitHub", "GITHUB_TOKEN (integrations.github.token)")
	}
	cl, err := github.New(c.options(g.Token, g.APIURL))
	if err != nil {
		return nil, fmt.Errorf("GitHub (integrations.github.api_url / GITHUB_API_URL): %w", err)
	}
	cl.DispatchPoll = min(c.deps.Poll, github.DefaultDispatchPoll)
	c.github = cl
	return cl, nil
}

// DigitalOcean returns the DigitalOcean client, or an error naming DIGITALOCEAN_TOKEN.
func (c *clients) DigitalOcean() (*digitalocean.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.do != nil {
		return c.do, nil
	}
	d := c.cfg.DigitalOcean
	if d.Token == "" {
		return nil, errNotConfigured("DigitalOcean", "DIGITALOCEAN_TOKEN (integrations.digitalocean.token)")
	}
	cl, err := digitalocean.New(c.options(d.Token, d.APIURL))
	if err != nil {
		return nil, fmt.Errorf("DigitalOcean (integrations.digitalocean.api_url / DIGITALOCEAN_API_URL): %w", err)
	}
	c.do = cl
	return cl, nil
}

// supabaseTarget is env's Supabase project: integrations.supabase.<env>,
// else the project opsd runs against.
func (c *clients) supabaseTarget(env string) (SupabaseTarget, bool) {
	for k, t := range c.cfg.Supabase {
		if strings.EqualFold(k, env) && (t.URL != "" || t.DatabaseURL != "") {
			return t, true
		}
	}
	return c.deps.DefaultSupabase, false
}

// Supabase returns the health client of env's project, or an error naming
// the keys to set.
func (c *clients) Supabase(env string) (*supabaseadapter.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.supabase[env]; cl != nil {
		return cl, nil
	}
	t, _ := c.supabaseTarget(env)
	if t.URL == "" || t.Key == "" {
		return nil, errNotConfigured("Supabase for env "+env, fmt.Sprintf(
			"integrations.supabase.%s.url and .key (or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY for the project opsd runs against)", env))
	}
	cl, err := supabaseadapter.New(c.options(t.Key, t.URL))
	if err != nil {
		return nil, fmt.Errorf("Supabase for env %s (integrations.supabase.%s.url): %w", env, env, err)
	}
	c.supabase[env] = cl
	return cl, nil
}

// DatabaseURL returns env's database URL for schema introspection.
func (c *clients) DatabaseURL(env string) (string, error) {
	t, _ := c.supabaseTarget(env)
	if t.DatabaseURL == "" {
		return "", errNotConfigured("the database of env "+env, fmt.Sprintf(
			"integrations.supabase.%s.database_url (or DATABASE_URL for the project opsd runs against)", env))
	}
	return t.DatabaseURL, nil
}

// URLPolicy guards URLs that come from run inputs and templates.
func (c *clients) URLPolicy() adapters.URLPolicy {
	return adapters.URLPolicy{Allow: c.cfg.URLAllowlist}
}

// redact cleans text that leaves through GitHub or spec_docs.
func (c *clients) redact(s string) string { return c.deps.Redactor.String(s) }

// isNotConfigured reports whether err says an integration is not configured.
func isNotConfigured(err error) bool { return errors.Is(err, adapters.ErrNotConfigured) }
