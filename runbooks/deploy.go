package runbooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/supabaseadapter"
	"github.com/opscontrolroom/opsd/adapters/vercel"
	"github.com/opscontrolroom/opsd/executor"
)

// buildLogLines is how much of a failed build's log is attached.
const buildLogLines = 200

// deployRunbook deploys a Git ref of a repository to a Vercel project,
// optionally running the migrations workflow first.
type deployRunbook struct {
	c   *clients
	run *executor.Run

	// validate
	project, repo, ref, target string
	runMigrations              bool
	targets                    []executor.Target

	// preflight
	vc       *vercel.Client
	gh       *github.Client
	sb       *supabaseadapter.Client // nil: Supabase not configured for the env
	proj     *vercel.Project
	sha      string
	workflow string

	// action and verify
	migrationRun int64
	dep          *vercel.Deployment
	final        *vercel.Deployment
}

var (
	_ executor.DryRunner      = (*deployRunbook)(nil)
	_ executor.PhaseTimeouter = (*deployRunbook)(nil)
	_ executor.Targeter       = (*deployRunbook)(nil)
)

// Targets: the Vercel project and target are written; the repository is
// read, and written when the migrations workflow is dispatched on it.
func (d *deployRunbook) Targets() []executor.Target { return d.targets }

// PhaseTimeout: the action waits for the migrations workflow, verify for the build.
func (d *deployRunbook) PhaseTimeout(phase string) time.Duration {
	switch phase {
	case executor.PhaseValidate, executor.PhaseSummarize:
		return time.Minute
	case executor.PhasePreflight:
		return 3 * time.Minute
	case executor.PhaseAction:
		return 30 * time.Minute
	case executor.PhaseVerify:
		return 45 * time.Minute
	}
	return 0
}

// Validate reads project, repo, branch (or ref), target and runMigrations.
func (d *deployRunbook) Validate(ctx context.Context, rc *executor.RunContext) error {
	p := d.c.params(rc)
	v := d.c.cfg.Vercel
	d.project = p.str([]string{"project"}, v.Projects[d.run.Env], v.Project)
	p.required("project", d.project, fmt.Sprintf("the Vercel project to deploy (or set integrations.vercel.projects.%s or integrations.vercel.project)", d.run.Env))
	d.repo = p.str([]string{"repo"}, d.c.cfg.GitHub.Repo)
	p.shape("repo", d.repo, repoPattern, expectRepo)
	d.ref = p.str([]string{"branch", "ref"})
	p.shape("branch", d.ref, refPattern, expectRef)
	target := p.str([]string{"target"})
	t, ok := vercelTarget(target, d.run.Env)
	if !ok {
		p.problem("input %q must be production, staging or preview (or an env: prod, staging, dev), got %q", "target", target)
	}
	d.target = t
	d.runMigrations = p.boolean("runMigrations", false)
	if err := p.err(); err != nil {
		return err
	}
	var err error
	if d.targets, err = d.c.resolveTargets(d.run, []executor.Target{
		newTarget(targetVercelProject, d.project, p.inputOrigin("project"), true),
		vercelDeployTarget(d.target, p.inputOrigin("target")),
		newTarget(targetRepo, d.repo, p.inputOrigin("repo"), d.runMigrations),
	}); err != nil {
		return err
	}
	p.report(rc)
	return rc.Info(srcSystem, fmt.Sprintf("deploy Vercel project %s to %s from %s@%s%s", d.project, targetName(d.target),
		orDefault(d.repo, "(the project's repository)"), orDefault(d.ref, "(the production branch)"), when(d.runMigrations, ", migrations first")),
		map[string]any{"project": d.project, "repo": d.repo, "ref": d.ref, "target": targetName(d.target), "runMigrations": d.runMigrations})
}

// Preflight checks the Vercel project and its latest deployment, that the
// ref exists and its CI status, and Supabase health.
func (d *deployRunbook) Preflight(ctx context.Context, rc *executor.RunContext) error {
	ctx = traced(ctx, rc, "")
	var err error
	if d.vc, err = d.c.Vercel(); err != nil {
		return err
	}
	if d.gh, err = d.c.GitHub(); err != nil {
		return err
	}
	if d.runMigrations {
		if d.workflow = d.c.cfg.GitHub.MigrationsWorkflow; d.workflow == "" {
			return errNotConfigured("the migrations workflow (input runMigrations is true)", "integrations.github.migrations_workflow, e.g. migrate.yml")
		}
	}
	if d.proj, err = d.vc.GetProject(ctx, d.project); err != nil {
		return fmt.Errorf("Vercel project %s is not reachable: %w", d.project, err)
	}
	link := d.proj.Link
	_ = rc.Info(srcVercel, fmt.Sprintf("project %s (%s) reachable", d.proj.Name, d.proj.ID), map[string]any{"framework": d.proj.Framework, "linked": link != nil})
	if d.repo == "" && link != nil && link.Org != "" {
		d.repo = link.Org + "/" + link.Repo
		linked, err := d.c.resolveTargets(d.run, []executor.Target{
			newTarget(targetRepo, d.repo, "the Git link of Vercel project "+d.proj.Name, d.runMigrations)})
		if err != nil {
			return err
		}
		d.targets = append(d.targets, linked...)
	}
	if d.repo == "" {
		return fmt.Errorf("no repository to deploy from: give input repo, set integrations.github.repo, or connect project %s to a Git repository", d.proj.Name)
	}
	if d.ref == "" {
		if link != nil && link.ProductionBranch != "" {
			d.ref = link.ProductionBranch
		} else if d.ref, err = d.gh.DefaultBranch(ctx, d.repo); err != nil {
			return err
		}
	}
	latest, err := d.vc.ListDeployments(ctx, d.proj.ID, targetName(d.target), 1)
	switch {
	case err != nil:
		return fmt.Errorf("latest deployment of %s: %w", d.proj.Name, err)
	case len(latest) == 0:
		_ = rc.Info(srcVercel, fmt.Sprintf("no %s deployment of %s yet", targetName(d.target), d.proj.Name), nil)
	case !latest[0].Done():
		_ = rc.Warn(srcVercel, "a deployment is still in progress: "+describeDeployment(&latest[0]), nil)
	default:
		_ = rc.Info(srcVercel, "latest deployment: "+describeDeployment(&latest[0]), nil)
	}
	if d.sha, err = d.gh.GetRef(ctx, d.repo, d.ref); err != nil {
		// A missing ref (422) and a repository that is missing or hidden
		// from the token (404) are told apart, with GitHub's own message.
		if errors.Is(err, github.ErrRefNotFound) {
			return fmt.Errorf("ref %q does not exist in %s: %w", d.ref, d.repo, err)
		}
		return err
	}
	_ = rc.Info(srcGitHub, fmt.Sprintf("%s@%s is %.12s", d.repo, d.ref, d.sha), map[string]any{"sha": d.sha})
	ci, err := ciStatus(ctx, d.gh, d.repo, d.sha)
	if err != nil {
		return err
	}
	switch ci.State {
	case github.StateFailure:
		_ = rc.Error(srcGitHub, "CI "+describeCI(ci), map[string]any{"failed": ci.Failed})
		return fmt.Errorf("CI is failing on %s@%s (%.7s): %s", d.repo, d.ref, d.sha, strings.Join(ci.Failed, ", "))
	case github.StatePending:
		_ = rc.Warn(srcGitHub, "CI "+describeCI(ci), nil)
	default:
		_ = rc.Info(srcGitHub, "CI "+describeCI(ci), nil)
	}
	return d.checkSupabase(ctx, rc)
}

func (d *deployRunbook) checkSupabase(ctx context.Context, rc *executor.RunContext) error {
	sb, err := d.c.Supabase(d.run.Env)
	if isNotConfigured(err) {
		return rc.Warn(srcSupabase, "Supabase health not checked: "+err.Error(), nil)
	}
	if err != nil {
		return err
	}
	d.sb = sb
	_, err = supabaseHealth(ctx, rc, sb, d.run.Env)
	return err
}

// DescribeAction says what the action phase would do.
func (d *deployRunbook) DescribeAction(ctx context.Context, rc *executor.RunContext) (string, error) {
	s := fmt.Sprintf("create a %s deployment of Vercel project %s from %s@%s (%.7s)", targetName(d.target), d.project, d.repo, d.ref, d.sha)
	if d.runMigrations {
		s = fmt.Sprintf("dispatch workflow %s on %s@%s and wait for it, then %s", d.workflow, d.repo, d.ref, s)
	}
	return s, nil
}

// Action runs the migrations workflow when asked, then creates the deployment.
func (d *deployRunbook) Action(ctx context.Context, rc *executor.RunContext) error {
	ctx = traced(ctx, rc, "")
	if d.runMigrations {
		args, _ := json.Marshal(map[string]any{"repo": d.repo, "workflow": d.workflow, "ref": d.ref})
		err := rc.Step(ctx, executor.StepSpec{ID: "migrations", Title: "Run the migrations workflow", Kind: "tool", Tool: "github", Action: "dispatch", Args: args},
			func(ctx context.Context) error { return d.migrate(ctx, rc) })
		if err != nil {
			return err
		}
	}
	owner, name := splitRepo(d.repo)
	gs := &vercel.GitSource{Org: owner, Repo: name, Ref: d.ref, SHA: d.sha}
	if l := d.proj.Link; l != nil && strings.EqualFold(l.Org+"/"+l.Repo, d.repo) {
		// Vercel wants the gitSource of the project's own link type.
		gs.Type, gs.RepoID = l.Type, l.RepoID
	}
	args, _ := json.Marshal(map[string]any{"project": d.proj.Name, "target": targetName(d.target), "repo": d.repo, "ref": d.ref, "sha": d.sha})
	return rc.Step(ctx, executor.StepSpec{ID: "deploy", Title: "Create the Vercel deployment", Kind: "tool", Tool: "vercel", Action: "deploy", Args: args},
		func(ctx context.Context) error {
			dep, err := d.vc.CreateDeployment(ctx, vercel.CreateDeploymentRequest{
				Name: d.proj.Name, Project: d.proj.ID, Target: d.target,
				GitSource: gs,
				Meta:      map[string]string{"opsdRunId": d.run.ID},
			})
			if err != nil {
				return err
			}
			d.dep = dep
			rc.SetOutput("deployment_id", dep.ID)
			rc.SetOutput("deployment_url", deploymentURL(dep))
			return rc.Info(srcVercel, "created deployment "+describeDeployment(dep),
				map[string]any{"id": dep.ID, "url": deploymentURL(dep), "inspector_url": dep.InspectorURL})
		})
}

func (d *deployRunbook) migrate(ctx context.Context, rc *executor.RunContext) error {
	id, err := d.gh.DispatchWorkflow(ctx, d.repo, d.workflow, d.ref, nil)
	if err != nil {
		return err
	}
	d.migrationRun = id
	link := d.c.workflowRunURL(d.repo, id)
	rc.SetOutput("migrations_run_url", link)
	_ = rc.Info(srcGitHub, fmt.Sprintf("dispatched %s on %s@%s: run %d %s", d.workflow, d.repo, d.ref, id, link), map[string]any{"run_id": id, "url": link})
	conclusion, err := d.gh.WaitForWorkflowRun(ctx, d.repo, id, d.c.deps.Poll)
	if err != nil {
		return err
	}
	if conclusion != "success" {
		_ = rc.Artifact(ctx, executor.ArtifactLink, "Migrations workflow run (failed)", link)
		return fmt.Errorf("migrations workflow %s run %d concluded %s: %s", d.workflow, id, conclusion, link)
	}
	return rc.Success(srcGitHub, fmt.Sprintf("migrations workflow run %d succeeded", id), nil)
}

// Verify follows the deployment to READY (attaching the build log tail when
// it fails) and re-checks Supabase health.
func (d *deployRunbook) Verify(ctx context.Context, rc *executor.RunContext) error {
	ctx = traced(ctx, rc, "")
	if d.dep == nil {
		return rc.Info(srcSystem, "dry run: no deployment to follow", nil)
	}
	final, err := d.vc.WaitForDeployment(ctx, d.dep.ID, d.c.deps.Poll)
	var failed *vercel.DeploymentFailedError
	if errors.As(err, &failed) {
		d.final = final
		tail, lerr := buildLogTail(ctx, rc, d.vc, d.dep.ID, buildLogLines)
		switch {
		case lerr != nil:
			_ = rc.Warn(srcVercel, "build log not available: "+lerr.Error(), nil)
		case tail != "":
			if aerr := rc.Artifact(ctx, executor.ArtifactFile, fmt.Sprintf("Vercel build log (last %d lines) of %s", buildLogLines, d.dep.ID), tail); aerr != nil {
				return aerr
			}
		}
		if d.dep.InspectorURL != "" {
			_ = rc.Artifact(ctx, executor.ArtifactLink, "Vercel inspector (failed deployment)", d.dep.InspectorURL)
		}
		return err
	}
	if err != nil {
		return err
	}
	d.final = final
	_ = rc.Success(srcVercel, "deployment ready: "+describeDeployment(final), map[string]any{"url": deploymentURL(final)})
	if d.sb != nil {
		if _, err := supabaseHealth(ctx, rc, d.sb, d.run.Env); err != nil {
			return fmt.Errorf("after the deployment: %w", err)
		}
	}
	return nil
}

// Summarize links the deployment, its inspector and the migrations run.
func (d *deployRunbook) Summarize(ctx context.Context, rc *executor.RunContext) error {
	if d.dep == nil { // dry run
		return rc.Info(srcSystem, fmt.Sprintf("Next steps: run again without dry_run to deploy %s@%s to %s.", d.repo, d.ref, targetName(d.target)), nil)
	}
	dep := d.dep
	if d.final != nil {
		dep = d.final
	}
	links := [][2]string{{"Deployment", deploymentURL(dep)}, {"Vercel inspector", orDefault(dep.InspectorURL, d.dep.InspectorURL)}}
	if d.migrationRun != 0 {
		links = append(links, [2]string{"Migrations workflow run", d.c.workflowRunURL(d.repo, d.migrationRun)})
	}
	for _, l := range links {
		if l[1] == "" {
			continue
		}
		if err := rc.Artifact(ctx, executor.ArtifactLink, l[0], l[1]); err != nil {
			return err
		}
	}
	rc.SetOutput("state", dep.State)
	rc.SetOutput("sha", d.sha)
	return rc.Info(srcSystem, fmt.Sprintf("Next steps: open %s and smoke-test it; watch the Vercel inspector and error rates; "+
		"if something is wrong, redeploy the previous deployment (or run a deploy of the last good ref).", deploymentURL(dep)), nil)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func when(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}
