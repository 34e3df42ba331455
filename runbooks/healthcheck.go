package runbooks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/executor"
)

// healthRunbook checks, read-only, every configured integration: Vercel's
// latest deployment per project, Supabase health, DigitalOcean droplets and
// health URLs, the latest GitHub workflow run on the default branch, and
// URLs given as input. Integrations that are not configured are skipped with
// a warning. Checks that fail are re-run once in verify; the run fails if
// any still fails.
type healthRunbook struct {
	c   *clients
	run *executor.Run

	repo    string
	urls    []string
	targets []executor.Target

	checks  []healthCheck
	results []checkResult
	started time.Time
}

var (
	_ executor.DryRunner      = (*healthRunbook)(nil)
	_ executor.PhaseTimeouter = (*healthRunbook)(nil)
	_ executor.Targeter       = (*healthRunbook)(nil)
)

// Targets: the repository whose CI is read, and the env's database; input
// URLs are governed by integrations.url_allowlist instead.
func (h *healthRunbook) Targets() []executor.Target { return h.targets }

// PhaseTimeout keeps a health check short.
func (h *healthRunbook) PhaseTimeout(phase string) time.Duration {
	switch phase {
	case executor.PhaseAction, executor.PhaseVerify:
		return 5 * time.Minute
	}
	return time.Minute
}

// Validate reads repo and urls.
func (h *healthRunbook) Validate(ctx context.Context, rc *executor.RunContext) error {
	p := h.c.params(rc)
	h.repo = p.str([]string{"repo"}, h.c.cfg.GitHub.Repo)
	p.shape("repo", h.repo, repoPattern, expectRepo)
	h.urls = p.list("urls")
	for i, u := range h.urls {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			p.problem("input %q[%d] must be an http(s) URL, got %q", "urls", i, u)
		}
	}
	if err := p.err(); err != nil {
		return err
	}
	var err error
	if h.targets, err = h.c.resolveTargets(h.run, []executor.Target{
		newTarget(targetRepo, h.repo, p.inputOrigin("repo"), false),
		newTarget(targetDatabase, h.run.Env, "", false),
	}); err != nil {
		return err
	}
	p.report(rc)
	return nil
}

// Preflight decides what to check from the configuration.
func (h *healthRunbook) Preflight(ctx context.Context, rc *executor.RunContext) error {
	skip := func(what string, err error) { _ = rc.Warn(srcSystem, fmt.Sprintf("%s skipped: %v", what, err), nil) }
	var err error
	h.checks, err = h.c.plannedChecks(h.run.Env, h.repo, h.urls, skip)
	if err != nil {
		return err
	}
	if len(h.checks) == 0 {
		return fmt.Errorf("nothing to check: configure at least one integration (VERCEL_TOKEN and integrations.vercel.project, " +
			"integrations.supabase.<env> or SUPABASE_URL, DIGITALOCEAN_TOKEN, integrations.digitalocean.health_urls, GITHUB_TOKEN and integrations.github.repo) or give input urls")
	}
	names := make([]string, len(h.checks))
	for i, c := range h.checks {
		names[i] = c.name
	}
	return rc.Info(srcSystem, fmt.Sprintf("%d checks planned: %s", len(names), strings.Join(names, "; ")), nil)
}

// DescribeAction lists the checks.
func (h *healthRunbook) DescribeAction(ctx context.Context, rc *executor.RunContext) (string, error) {
	names := make([]string, len(h.checks))
	for i, c := range h.checks {
		names[i] = c.name
	}
	return fmt.Sprintf("run %d read-only checks: %s", len(names), strings.Join(names, "; ")), nil
}

// Action runs every check.
func (h *healthRunbook) Action(ctx context.Context, rc *executor.RunContext) error {
	h.started = time.Now()
	for _, c := range h.checks {
		rs := c.run(traced(ctx, rc, c.source))
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range rs {
			rs[i].retry = c
			reportResult(rc, rs[i])
		}
		h.results = append(h.results, rs...)
	}
	passed, failed := countResults(h.results)
	return rc.Info(srcSystem, fmt.Sprintf("%d checks passed, %d failed", passed, failed), nil)
}

// Verify re-runs the checks that failed, writes the report, and fails if
// any check still fails.
func (h *healthRunbook) Verify(ctx context.Context, rc *executor.RunContext) error {
	if h.results == nil { // dry run
		return rc.Info(srcSystem, "dry run: no checks ran", nil)
	}
	rerun := map[string]bool{}
	var next []checkResult
	for _, r := range h.results {
		if r.OK {
			next = append(next, r)
			continue
		}
		if rerun[r.retry.name] {
			continue
		}
		rerun[r.retry.name] = true
		_ = rc.Info(srcSystem, "re-checking "+r.retry.name, nil)
		rs := r.retry.run(traced(ctx, rc, r.retry.source))
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range rs {
			rs[i].retry = r.retry
			if rs[i].OK {
				rs[i].Detail += " (passed on re-check)"
			}
			reportResult(rc, rs[i])
		}
		next = append(next, rs...)
	}
	h.results = next
	report := healthReport(h.run, h.results, h.started)
	if err := rc.Artifact(ctx, executor.ArtifactFile, fmt.Sprintf("Healthcheck report (%s)", h.run.Env), report); err != nil {
		return err
	}
	passed, failed := countResults(h.results)
	rc.SetOutput("checks_passed", passed)
	rc.SetOutput("checks_failed", failed)
	if failed > 0 {
		var names []string
		for _, r := range h.results {
			if !r.OK {
				names = append(names, strings.TrimSpace(fmt.Sprintf("%s %s: %s %s", r.Integration, r.Check, r.Status, r.Detail)))
			}
		}
		return fmt.Errorf("%d of %d checks failed: %s", failed, passed+failed, strings.Join(names, "; "))
	}
	return rc.Success(srcSystem, fmt.Sprintf("all %d checks passed", passed), nil)
}

// Summarize states the outcome and next steps.
func (h *healthRunbook) Summarize(ctx context.Context, rc *executor.RunContext) error {
	if h.results == nil {
		return rc.Info(srcSystem, "Next steps: run again without dry_run to run the checks.", nil)
	}
	return rc.Info(srcSystem, "Next steps: nothing to do; schedule this healthcheck or run it after each deploy. "+
		"Integrations skipped above can be configured under integrations: in the opsd configuration.", nil)
}

func reportResult(rc *executor.RunContext, r checkResult) {
	data := map[string]any{"check": r.Check, "status": r.Status, "ok": r.OK, "latency_ms": r.Latency.Milliseconds()}
	msg := strings.TrimSpace(fmt.Sprintf("%s: %s %s", r.Check, r.Status, r.Detail))
	if r.OK {
		_ = rc.Success(r.Integration, msg, data)
	} else {
		_ = rc.Error(r.Integration, msg, data)
	}
}

func countResults(rs []checkResult) (passed, failed int) {
	for _, r := range rs {
		if r.OK {
			passed++
		} else {
			failed++
		}
	}
	return passed, failed
}

// healthReport is the markdown report artifact.
func healthReport(run *executor.Run, rs []checkResult, started time.Time) string {
	var b strings.Builder
	passed, failed := countResults(rs)
	fmt.Fprintf(&b, "# Healthcheck: %s\n\nRun %s, %s. %d passed, %d failed.\n\n", run.Env, run.ID, started.UTC().Format(time.RFC3339), passed, failed)
	b.WriteString("| Integration | Check | Result | Status | Detail | Latency |\n|---|---|---|---|---|---|\n")
	for _, r := range rs {
		res := "✅ ok"
		if !r.OK {
			res = "❌ failed"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", cell(r.Integration), cell(r.Check), res, cell(r.Status), cell(r.Detail),
			r.Latency.Round(time.Millisecond))
	}
	return b.String()
}

// cell makes text safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}
