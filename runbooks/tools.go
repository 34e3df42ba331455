package runbooks

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/opscontrolroom/opsd/adapters/vercel"
	"github.com/opscontrolroom/opsd/executor"
)

var (
	projectPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
	workflowPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}\.ya?ml$`)
	targetPattern   = regexp.MustCompile(`^(production|staging|preview|prod|dev)$`)
	envPattern      = regexp.MustCompile(`^(prod|staging|dev)$`)
	pathPattern     = regexp.MustCompile(`^[A-Za-z0-9._-][A-Za-z0-9._/-]{0,254}$`)
)

// tool builds a Tool from a parser (used by Check and Run) and a runner.
func tool[P any](name string, parse func(a *argReader) P, run func(ctx context.Context, rc *executor.RunContext, p P) error) Tool {
	parsed := func(args map[string]any) (P, error) {
		a := readArgs(name, args)
		p := parse(a)
		return p, a.err()
	}
	return Tool{
		Check: func(args map[string]any) error { _, err := parsed(args); return err },
		Run: func(ctx context.Context, rc *executor.RunContext, args map[string]any) error {
			p, err := parsed(args)
			if err != nil {
				return err
			}
			return run(ctx, rc, p)
		},
	}
}

// newTools registers the template tool actions.
func newTools(c *clients) Tools {
	return Tools{
		"vercel.deploy":         withTargets(c.vercelDeployTool(), vercelDeployTargets),
		"vercel.latest":         withTargets(c.vercelLatestTool(), argTarget(targetVercelProject, "project", false)),
		"github.dispatch":       withTargets(c.githubDispatchTool(), argTarget(targetRepo, "repo", true)),
		"github.ci":             withTargets(c.githubCITool(), argTarget(targetRepo, "repo", false)),
		"github.pr":             withTargets(c.githubPRTool(), argTarget(targetRepo, "repo", true)),
		"github.issue":          withTargets(c.githubIssueTool(), argTarget(targetRepo, "repo", true)),
		"digitalocean.droplets": withTargets(c.dropletsTool(), dropletTargets),
		"http.check":            c.httpCheckTool(),
		"supabase.health":       withTargets(c.supabaseHealthTool(), supabaseHealthTargets),
	}
}

type vercelDeployArgs struct {
	project, ref, repo, target string
	wait                       bool
}

func (c *clients) vercelDeployTool() Tool {
	return tool("vercel.deploy", func(a *argReader) vercelDeployArgs {
		return vercelDeployArgs{
			project: a.str("project", true, projectPattern, "the Vercel project name or id"),
			ref:     a.str("ref", true, refPattern, expectRef),
			repo:    a.str("repo", false, repoPattern, expectRepo+" (default: the project's connected repository)"),
			target:  a.str("target", false, targetPattern, "production, staging or preview (default: from the run's env)"),
			wait:    a.boolean("wait", true),
		}
	}, func(ctx context.Context, rc *executor.RunContext, p vercelDeployArgs) error {
		vc, err := c.Vercel()
		if err != nil {
			return err
		}
		proj, err := vc.GetProject(ctx, p.project)
		if err != nil {
			return err
		}
		repo := p.repo
		if repo == "" && proj.Link != nil && proj.Link.Org != "" {
			repo = proj.Link.Org + "/" + proj.Link.Repo
		}
		if repo == "" {
			return fmt.Errorf("vercel.deploy: project %s has no connected repository: give args.repo", proj.Name)
		}
		target, _ := vercelTarget(p.target, rc.Run.Env)
		owner, name := splitRepo(repo)
		dep, err := vc.CreateDeployment(ctx, vercel.CreateDeploymentRequest{Name: proj.Name, Project: proj.ID, Target: target,
			GitSource: &vercel.GitSource{Org: owner, Repo: name, Ref: p.ref}, Meta: map[string]string{"opsdRunId": rc.Run.ID}})
		if err != nil {
			return err
		}
		_ = rc.Info(srcVercel, "created deployment "+describeDeployment(dep), map[string]any{"id": dep.ID, "url": deploymentURL(dep)})
		_ = rc.Artifact(ctx, executor.ArtifactLink, "Vercel inspector "+dep.ID, dep.InspectorURL)
		rc.SetOutput("vercel_deployment_id", dep.ID)
		if !p.wait {
			return nil
		}
		final, err := vc.WaitForDeployment(ctx, dep.ID, c.deps.Poll)
		var failed *vercel.DeploymentFailedError
		if errors.As(err, &failed) {
			if tail, lerr := buildLogTail(ctx, rc, vc, dep.ID, buildLogLines); lerr == nil && tail != "" {
				_ = rc.Artifact(ctx, executor.ArtifactFile, "Vercel build log of "+dep.ID, tail)
			}
		}
		if err != nil {
			return err
		}
		_ = rc.Artifact(ctx, executor.ArtifactLink, "Deployment "+final.ID, deploymentURL(final))
		return rc.Success(srcVercel, "deployment ready: "+describeDeployment(final), nil)
	})
}

type vercelLatestArgs struct {
	project, target string
	requireReady    bool
}

func (c *clients) vercelLatestTool() Tool {
	return tool("vercel.latest", func(a *argReader) vercelLatestArgs {
		return vercelLatestArgs{
			project:      a.str("project", true, projectPattern, "the Vercel project name or id"),
			target:       a.str("target", false, targetPattern, "production, staging or preview (default: any)"),
			requireReady: a.boolean("requireReady", false),
		}
	}, func(ctx context.Context, rc *executor.RunContext, p vercelLatestArgs) error {
		vc, err := c.Vercel()
		if err != nil {
			return err
		}
		query := ""
		if p.target != "" {
			t, _ := vercelTarget(p.target, rc.Run.Env)
			query = targetName(t)
		}
		ds, err := vc.ListDeployments(ctx, p.project, query, 1)
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			if p.requireReady {
				return fmt.Errorf("vercel.latest: project %s has no deployments", p.project)
			}
			return rc.Info(srcVercel, "no deployments of "+p.project, nil)
		}
		d := &ds[0]
		rc.SetOutput("vercel_latest_state", d.State)
		if p.requireReady && d.State != vercel.StateReady {
			return fmt.Errorf("vercel.latest: latest deployment of %s is %s, not READY: %s", p.project, d.State, describeDeployment(d))
		}
		return rc.Info(srcVercel, "latest deployment: "+describeDeployment(d), map[string]any{"id": d.ID, "state": d.State})
	})
}
