package runbooks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/executor"
)

// incidentLogLines is how much of a failed deployment's build log is triaged.
const incidentLogLines = 100

// incidentRunbook triages an incident from the failing Vercel deployment's
// logs, failing GitHub workflow runs and Supabase health, and opens a GitHub
// issue with the report, or comments on the open issue of the same
// fingerprint.
type incidentRunbook struct {
	c   *clients
	run *executor.Run

	repo, branch, project, notes string
	targets                      []executor.Target

	gh     *github.Client
	triage *triage

	issue     github.Issue
	commented string // comment URL when an open issue was commented on
}

var (
	_ executor.DryRunner      = (*incidentRunbook)(nil)
	_ executor.PhaseTimeouter = (*incidentRunbook)(nil)
	_ executor.Targeter       = (*incidentRunbook)(nil)
)

// Targets: the repository the issue is opened in; the Vercel project is
// only read (triage).
func (in *incidentRunbook) Targets() []executor.Target { return in.targets }

// PhaseTimeout: triage reads logs and lists runs; the rest is a few calls.
func (in *incidentRunbook) PhaseTimeout(phase string) time.Duration {
	if phase == executor.PhasePreflight {
		return 5 * time.Minute
	}
	return 2 * time.Minute
}

// Validate reads repo, branch, project and notes.
func (in *incidentRunbook) Validate(ctx context.Context, rc *executor.RunContext) error {
	p := in.c.params(rc)
	in.repo = p.str([]string{"repo"}, in.c.cfg.GitHub.Repo)
	p.required("repo", in.repo, expectRepo+" to open the incident issue in (or set integrations.defaults.repo or integrations.github.repo)")
	p.shape("repo", in.repo, repoPattern, expectRepo)
	in.branch = p.str([]string{"branch"})
	p.shape("branch", in.branch, refPattern, expectRef)
	v := in.c.cfg.Vercel
	in.project = p.str([]string{"project"}, v.Projects[in.run.Env], v.Project)
	in.notes = p.text("notes")
	if err := p.err(); err != nil {
		return err
	}
	var err error
	if in.targets, err = in.c.resolveTargets(in.run, []executor.Target{
		newTarget(targetRepo, in.repo, p.inputOrigin("repo"), true),
		newTarget(targetVercelProject, in.project, p.inputOrigin("project"), false),
	}); err != nil {
		return err
	}
	p.report(rc)
	return nil
}

// Preflight triages, read-only: the latest finished Vercel deployment and
// its build log, failing workflow runs on the branch, Supabase health.
func (in *incidentRunbook) Preflight(ctx context.Context, rc *executor.RunContext) error {
	ctx = traced(ctx, rc, "")
	var err error
	if in.gh, err = in.c.GitHub(); err != nil {
		return err
	}
	if in.branch == "" {
		if in.branch, err = in.gh.DefaultBranch(ctx, in.repo); err != nil {
			return fmt.Errorf("repository %s is not reachable: %w", in.repo, err)
		}
	}
	t := &triage{env: in.run.Env, repo: in.repo, branch: in.branch, project: in.project}
	if err := in.c.triageVercel(ctx, rc, t); err != nil {
		return err
	}
	if t.runs, err = in.gh.FailingWorkflowRuns(ctx, in.repo, in.branch, 5); err != nil {
		return err
	}
	for _, r := range t.runs {
		_ = rc.Error(srcGitHub, fmt.Sprintf("workflow %s failing on %s: run #%d %s %s", r.Name, in.branch, r.RunNumber, r.Conclusion, r.HTMLURL), nil)
	}
	if len(t.runs) == 0 {
		_ = rc.Info(srcGitHub, fmt.Sprintf("no failing workflows on %s@%s", in.repo, in.branch), nil)
	}
	sb, err := in.c.Supabase(in.run.Env)
	switch {
	case isNotConfigured(err):
		t.skipped = append(t.skipped, "Supabase: "+err.Error())
		_ = rc.Warn(srcSupabase, "Supabase not triaged: "+err.Error(), nil)
	case err != nil:
		return err
	default:
		rep, _ := supabaseHealth(ctx, rc, sb, in.run.Env)
		t.health = &rep
	}
	in.triage = t
	t.fingerprint = t.computeFingerprint()
	rc.SetOutput("fingerprint", t.fingerprint)
	if len(t.findings()) == 0 {
		return rc.Warn(srcSystem, "triage found nothing failing; the issue will record the reported incident", map[string]any{"fingerprint": t.fingerprint})
	}
	return rc.Info(srcSystem, fmt.Sprintf("triage: %s (fingerprint %s)", strings.Join(t.findings(), "; "), t.fingerprint), nil)
}

// DescribeAction says which issue would be opened or commented on.
func (in *incidentRunbook) DescribeAction(ctx context.Context, rc *executor.RunContext) (string, error) {
	return fmt.Sprintf("open an issue in %s with the triage report, or comment on the open issue labelled %s", in.repo, in.triage.label()), nil
}

// Action opens the issue, or comments on the open one with the same fingerprint.
func (in *incidentRunbook) Action(ctx context.Context, rc *executor.RunContext) error {
	ctx = traced(ctx, rc, "")
	t := in.triage
	body := in.c.redact(t.report(in.run, in.notes))
	args, _ := json.Marshal(map[string]any{"repo": in.repo, "label": t.label()})
	return rc.Step(ctx, executor.StepSpec{ID: "issue", Title: "Open or update the incident issue", Kind: "tool", Tool: "github", Action: "issue", Args: args},
		func(ctx context.Context) error {
			found, ok, err := in.gh.FindOpenIssue(ctx, in.repo, t.label())
			if err != nil {
				return err
			}
			if ok {
				in.issue = found
				in.commented, err = in.gh.CommentIssue(ctx, in.repo, found.Number, body)
				if err != nil {
					return err
				}
				return rc.Success(srcGitHub, fmt.Sprintf("commented on open issue #%d (same fingerprint %s): %s", found.Number, t.fingerprint, in.commented), nil)
			}
			title := in.c.redact(t.title(in.run))
			n, u, err := in.gh.OpenIssue(ctx, in.repo, title, body, []string{"incident", t.label()})
			if err != nil {
				return err
			}
			in.issue = github.Issue{Number: n, Title: title, URL: u}
			return rc.Success(srcGitHub, fmt.Sprintf("opened issue #%d: %s", n, u), nil)
		})
}

// Verify checks that the issue is found by its fingerprint, so the next
// incident run comments on it instead of opening another.
func (in *incidentRunbook) Verify(ctx context.Context, rc *executor.RunContext) error {
	if in.issue.Number == 0 {
		return rc.Info(srcSystem, "dry run: nothing to verify", nil)
	}
	ctx = traced(ctx, rc, "")
	found, ok, err := in.gh.FindOpenIssue(ctx, in.repo, in.triage.label())
	if err != nil {
		return err
	}
	if !ok || found.Number != in.issue.Number {
		return fmt.Errorf("issue #%d is not found open with label %s: a later incident run would open a duplicate", in.issue.Number, in.triage.label())
	}
	return rc.Success(srcGitHub, fmt.Sprintf("issue #%d is open and labelled %s", found.Number, in.triage.label()), nil)
}

// Summarize attaches the issue link, the triage report and the log excerpts.
func (in *incidentRunbook) Summarize(ctx context.Context, rc *executor.RunContext) error {
	t := in.triage
	if in.issue.URL != "" {
		if err := rc.Artifact(ctx, executor.ArtifactLink, fmt.Sprintf("Incident issue #%d", in.issue.Number), in.issue.URL); err != nil {
			return err
		}
		rc.SetOutput("issue", in.issue.URL)
	}
	if in.commented != "" {
		if err := rc.Artifact(ctx, executor.ArtifactLink, "Triage comment", in.commented); err != nil {
			return err
		}
	}
	if err := rc.Artifact(ctx, executor.ArtifactFile, "Triage report", t.report(in.run, in.notes)); err != nil {
		return err
	}
	if t.logTail != "" {
		if err := rc.Artifact(ctx, executor.ArtifactFile, "Log excerpts (redacted): "+t.deployment.ID, in.c.redact(t.logTail)); err != nil {
			return err
		}
	}
	next := "Next steps: assign the issue, fix forward or redeploy the last good deployment, then run a healthcheck."
	if in.issue.URL == "" {
		next = "Next steps: run again without dry_run to open the incident issue."
	}
	return rc.Info(srcSystem, next, nil)
}
