package runbooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/httpcheck"
	"github.com/opscontrolroom/opsd/adapters/vercel"
)

// healthCheck is one planned check; run may yield several results (one per
// droplet, one per Supabase service).
type healthCheck struct {
	name   string
	source string // event source of its HTTP calls ("" = the adapter's)
	run    func(ctx context.Context) []checkResult
}

// checkResult is one row of the healthcheck report.
type checkResult struct {
	Integration string
	Check       string
	Status      string
	Detail      string
	OK          bool
	Latency     time.Duration

	retry healthCheck
}

// urlCheckTimeout bounds one HTTP check.
const urlCheckTimeout = 10 * time.Second

// plannedChecks lists the checks the configuration allows; skip is told
// about each integration that is not configured.
func (c *clients) plannedChecks(env, repo string, urls []string, skip func(string, error)) ([]healthCheck, error) {
	var out []healthCheck
	vc, err := c.Vercel()
	switch {
	case isNotConfigured(err):
		skip("Vercel", err)
	case err != nil:
		return nil, err
	default:
		projects := c.vercelProjects()
		if len(projects) == 0 {
			skip("Vercel", errors.New("no project configured: set integrations.vercel.project or integrations.vercel.projects.<env>"))
		}
		for _, p := range projects {
			out = append(out, healthCheck{name: "Vercel latest deployment of " + p, run: func(ctx context.Context) []checkResult {
				return []checkResult{vercelLatestCheck(ctx, vc, p)}
			}})
		}
	}
	sb, err := c.Supabase(env)
	switch {
	case isNotConfigured(err):
		skip("Supabase", err)
	case err != nil:
		return nil, err
	default:
		out = append(out, healthCheck{name: "Supabase (" + env + ") health", run: func(ctx context.Context) []checkResult {
			var rs []checkResult
			for _, ch := range sb.Health(ctx).Checks {
				r := checkResult{Integration: srcSupabase, Check: ch.Name, OK: ch.OK, Latency: ch.Latency, Status: fmt.Sprint(ch.Status)}
				if ch.Err != nil {
					r.Detail = ch.Err.Error()
				}
				rs = append(rs, r)
			}
			return rs
		}})
	}
	if err := c.dropletChecks(&out, skip); err != nil {
		return nil, err
	}
	for _, u := range c.cfg.DigitalOcean.HealthURLs {
		// URLs from configuration are trusted: no URL policy.
		client := adapters.NewHTTPClient(httpcheck.Name, adapters.Options{MaxRetries: -1, Timeout: urlCheckTimeout})
		out = append(out, healthCheck{name: "HTTP " + u, source: srcDigitalOcean, run: func(ctx context.Context) []checkResult {
			return []checkResult{urlResult(srcDigitalOcean, httpcheck.Check(ctx, client, u, urlCheckTimeout, 0))}
		}})
	}
	for _, u := range urls {
		// URLs from run inputs go through the URL policy (no SSRF through opsd).
		policy := c.URLPolicy()
		out = append(out, healthCheck{name: "HTTP " + u, source: srcSystem, run: func(ctx context.Context) []checkResult {
			ck := httpcheck.NewChecker(policy, urlCheckTimeout)
			defer ck.Close()
			return []checkResult{urlResult(srcSystem, ck.Check(ctx, u, 0))}
		}})
	}
	gh, err := c.GitHub()
	switch {
	case isNotConfigured(err):
		skip("GitHub", err)
	case err != nil:
		return nil, err
	case repo == "":
		skip("GitHub", errors.New("no repository: set input repo, integrations.defaults.repo or integrations.github.repo"))
	default:
		out = append(out, healthCheck{name: "GitHub latest workflow run of " + repo, run: func(ctx context.Context) []checkResult {
			return []checkResult{githubLatestCheck(ctx, gh, repo)}
		}})
	}
	return out, nil
}

// vercelProjects are the distinct configured projects, sorted.
func (c *clients) vercelProjects() []string {
	var ps []string
	if p := c.cfg.Vercel.Project; p != "" {
		ps = append(ps, p)
	}
	for _, p := range c.cfg.Vercel.Projects {
		if p != "" {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

func (c *clients) dropletChecks(out *[]healthCheck, skip func(string, error)) error {
	cfg := c.cfg.DigitalOcean
	do, err := c.DigitalOcean()
	switch {
	case isNotConfigured(err):
		skip("DigitalOcean droplets", err)
		return nil
	case err != nil:
		return err
	}
	names := cfg.Droplets
	if len(names) == 0 {
		names = []string{""} // every droplet, or every one with the tag
	}
	for _, name := range names {
		label := "droplet " + name
		switch {
		case name == "" && cfg.Tag != "":
			label = "droplets tagged " + cfg.Tag
		case name == "":
			label = "all droplets"
		}
		*out = append(*out, healthCheck{name: "DigitalOcean " + label, run: func(ctx context.Context) []checkResult {
			start := time.Now()
			ds, err := do.Droplets(ctx, name, cfg.Tag)
			lat := time.Since(start)
			if err != nil {
				return []checkResult{{Integration: srcDigitalOcean, Check: label, Status: "error", Detail: err.Error(), Latency: lat}}
			}
			if len(ds) == 0 {
				return []checkResult{{Integration: srcDigitalOcean, Check: label, Status: "missing", Detail: "no such droplet", Latency: lat}}
			}
			var rs []checkResult
			for _, d := range ds {
				rs = append(rs, checkResult{Integration: srcDigitalOcean, Check: "droplet " + d.Name, Status: d.Status, OK: d.Status == "active",
					Detail: fmt.Sprintf("id %d, %s, %s", d.ID, d.Region, orDefault(d.PublicIPv4, "no public IPv4")), Latency: lat})
			}
			return rs
		}})
	}
	return nil
}

func vercelLatestCheck(ctx context.Context, vc *vercel.Client, project string) checkResult {
	r := checkResult{Integration: srcVercel, Check: project + " latest deployment"}
	start := time.Now()
	ds, err := vc.ListDeployments(ctx, project, "", 1)
	r.Latency = time.Since(start)
	switch {
	case err != nil:
		r.Status, r.Detail = "error", err.Error()
	case len(ds) == 0:
		r.Status, r.Detail, r.OK = "none", "no deployments yet", true
	default:
		d := &ds[0]
		r.Status, r.Detail = d.State, describeDeployment(d)
		r.OK = d.State != vercel.StateError
		if d.ErrorMessage != "" {
			r.Detail += ": " + d.ErrorMessage
		}
	}
	return r
}

func githubLatestCheck(ctx context.Context, gh *github.Client, repo string) (r checkResult) {
	r = checkResult{Integration: srcGitHub, Check: repo + " latest workflow run"}
	start := time.Now()
	defer func() { r.Latency = time.Since(start) }()
	branch, err := gh.DefaultBranch(ctx, repo)
	if err != nil {
		r.Status, r.Detail = "error", err.Error()
		return r
	}
	r.Check = fmt.Sprintf("%s@%s latest workflow run", repo, branch)
	run, err := gh.LatestWorkflowRun(ctx, repo, branch)
	switch {
	case errors.Is(err, github.ErrNoWorkflowRuns):
		r.Status, r.Detail, r.OK = "none", "no workflow runs", true
	case err != nil:
		r.Status, r.Detail = "error", err.Error()
	default:
		r.Status = run.Status
		if run.Conclusion != "" {
			r.Status = run.Conclusion
		}
		r.OK = !run.Failed()
		r.Detail = strings.TrimSpace(fmt.Sprintf("%s #%d (%s, %.7s) %s", run.Name, run.RunNumber, run.Event, run.HeadSHA, run.HTMLURL))
	}
	return r
}

func urlResult(integration string, res httpcheck.Result) checkResult {
	r := checkResult{Integration: integration, Check: res.URL, OK: res.OK, Latency: res.Latency, Status: fmt.Sprint(res.Status), Detail: res.Err}
	if res.Status == 0 {
		r.Status = "error"
	}
	return r
}
