package runbooks

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/supabaseadapter"
	"github.com/opscontrolroom/opsd/adapters/vercel"
	"github.com/opscontrolroom/opsd/executor"
)

// ciStatus summarises commit statuses and check runs of sha.
func ciStatus(ctx context.Context, gh *github.Client, repo, sha string) (github.Summary, error) {
	st, err := gh.CombinedStatus(ctx, repo, sha)
	if err != nil {
		return github.Summary{}, err
	}
	cr, err := gh.CheckRuns(ctx, repo, sha)
	if err != nil {
		return github.Summary{}, err
	}
	return st.Merge(cr), nil
}

// describeCI words a CI summary for an event.
func describeCI(s github.Summary) string {
	switch {
	case s.Total == 0:
		return "no CI status or check runs reported"
	case s.State == github.StateFailure:
		return fmt.Sprintf("failing: %s (%d checks)", strings.Join(s.Failed, ", "), s.Total)
	case s.State == github.StatePending:
		return fmt.Sprintf("pending (%d checks)", s.Total)
	}
	return fmt.Sprintf("passing (%d checks)", s.Total)
}

// supabaseHealth probes env's Supabase project, reports each check, and
// returns the report and an error naming the failed checks.
func supabaseHealth(ctx context.Context, rc *executor.RunContext, cl *supabaseadapter.Client, env string) (supabaseadapter.Report, error) {
	rep := cl.Health(ctx)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	checks := make([]map[string]any, 0, len(rep.Checks))
	for _, c := range rep.Checks {
		m := map[string]any{"check": c.Name, "ok": c.OK, "status": c.Status, "latency_ms": c.Latency.Milliseconds()}
		if c.Err != nil {
			m["error"] = c.Err.Error()
		}
		checks = append(checks, m)
	}
	if rep.OK() {
		_ = rc.Success(srcSupabase, fmt.Sprintf("Supabase (%s) healthy: %d checks passed", env, len(rep.Checks)), map[string]any{"checks": checks})
		return rep, nil
	}
	var why []string
	for _, c := range rep.Checks {
		if !c.OK {
			why = append(why, fmt.Sprintf("%s: %v", c.Name, c.Err))
		}
	}
	_ = rc.Error(srcSupabase, fmt.Sprintf("Supabase (%s) unhealthy: %s", env, strings.Join(rep.Failed(), ", ")), map[string]any{"checks": checks})
	return rep, fmt.Errorf("Supabase (%s) is unhealthy: %s", env, strings.Join(why, "; "))
}

// vercelTarget maps a target input or the run's env to Vercel's deployment
// target: "production", "staging", or "" for a preview.
func vercelTarget(target, env string) (string, bool) {
	if target == "" {
		target = env
	}
	switch target {
	case "production", "prod":
		return "production", true
	case "staging":
		return "staging", true
	case "preview", "dev":
		return "", true
	}
	return "", false
}

// targetName is a Vercel target for people and for list queries.
func targetName(t string) string {
	if t == "" {
		return "preview"
	}
	return t
}

// deploymentURL is a deployment's https URL.
func deploymentURL(d *vercel.Deployment) string {
	if d == nil || d.URL == "" {
		return ""
	}
	if strings.HasPrefix(d.URL, "http://") || strings.HasPrefix(d.URL, "https://") {
		return d.URL
	}
	return "https://" + d.URL
}

// githubWebURL is the web root matching a GitHub API root: github.com for
// the public API, the host of a GitHub Enterprise Server API (…/api/v3).
func githubWebURL(apiURL string) string {
	if apiURL == "" || strings.Contains(apiURL, "://api.github.com") {
		return "https://github.com"
	}
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" {
		return "https://github.com"
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v3")
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimSuffix(u.String(), "/")
}

// workflowRunURL links a workflow run.
func (c *clients) workflowRunURL(repo string, id int64) string {
	return fmt.Sprintf("%s/%s/actions/runs/%d", githubWebURL(c.cfg.GitHub.APIURL), repo, id)
}

// buildLogTail fetches the last lines of a deployment's build log, writes
// them as chatty output (coalesced) and returns them.
func buildLogTail(ctx context.Context, rc *executor.RunContext, vc *vercel.Client, id string, lines int) (string, error) {
	events, err := vc.DeploymentEvents(ctx, id, lines)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, e := range events {
		if e.Text == "" {
			continue
		}
		line := e.Text
		if e.Type == "stderr" || e.Type == "command" {
			line = "[" + e.Type + "] " + line
		}
		if !e.Created.IsZero() {
			line = e.Created.Format(time.TimeOnly) + " " + line
		}
		_ = rc.Log(srcVercel, line)
		b.WriteString(line + "\n")
	}
	return b.String(), nil
}

// describeDeployment is one line about a deployment.
func describeDeployment(d *vercel.Deployment) string {
	s := fmt.Sprintf("%s %s (%s", d.ID, d.State, targetName(d.Target))
	if ref := d.CommitRef(); ref != "" {
		s += fmt.Sprintf(", %s@%.7s", ref, d.CommitSHA())
	}
	if !d.CreatedAt.IsZero() {
		s += ", created " + d.CreatedAt.Format(time.RFC3339)
	}
	s += ")"
	if u := deploymentURL(d); u != "" {
		s += " " + u
	}
	return s
}
