package runbooks

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/executor"
)

// GitHub tool actions: github.dispatch, github.ci, github.pr, github.issue.

type dispatchArgs struct {
	repo, workflow, ref string
	inputs              map[string]string
	wait                bool
}

func (c *clients) githubDispatchTool() Tool {
	return tool("github.dispatch", func(a *argReader) dispatchArgs {
		return dispatchArgs{
			repo:     a.str("repo", true, repoPattern, expectRepo),
			workflow: a.str("workflow", true, workflowPattern, "a workflow file name such as deploy.yml"),
			ref:      a.str("ref", true, refPattern, expectRef),
			inputs:   a.strMap("inputs", false, "the workflow's inputs, name: value"),
			wait:     a.boolean("wait", true),
		}
	}, func(ctx context.Context, rc *executor.RunContext, p dispatchArgs) error {
		gh, err := c.GitHub()
		if err != nil {
			return err
		}
		id, err := gh.DispatchWorkflow(ctx, p.repo, p.workflow, p.ref, p.inputs)
		if err != nil {
			return err
		}
		link := c.workflowRunURL(p.repo, id)
		_ = rc.Info(srcGitHub, fmt.Sprintf("dispatched %s on %s@%s: run %d", p.workflow, p.repo, p.ref, id), map[string]any{"run_id": id, "url": link})
		_ = rc.Artifact(ctx, executor.ArtifactLink, fmt.Sprintf("Workflow run %s #%d", p.workflow, id), link)
		if !p.wait {
			return nil
		}
		conclusion, err := gh.WaitForWorkflowRun(ctx, p.repo, id, c.deps.Poll)
		if err != nil {
			return err
		}
		if conclusion != "success" {
			return fmt.Errorf("github.dispatch: workflow run %d concluded %s: %s", id, conclusion, link)
		}
		return rc.Success(srcGitHub, fmt.Sprintf("workflow run %d succeeded", id), nil)
	})
}

type ciArgs struct {
	repo, ref     string
	allowPending  bool
	requireChecks bool
}

func (c *clients) githubCITool() Tool {
	return tool("github.ci", func(a *argReader) ciArgs {
		return ciArgs{
			repo:          a.str("repo", true, repoPattern, expectRepo),
			ref:           a.str("ref", true, refPattern, expectRef),
			allowPending:  a.boolean("allowPending", true),
			requireChecks: a.boolean("requireChecks", false),
		}
	}, func(ctx context.Context, rc *executor.RunContext, p ciArgs) error {
		gh, err := c.GitHub()
		if err != nil {
			return err
		}
		sha, err := gh.GetRef(ctx, p.repo, p.ref)
		if err != nil {
			return err
		}
		ci, err := ciStatus(ctx, gh, p.repo, sha)
		if err != nil {
			return err
		}
		switch {
		case ci.State == github.StateFailure:
			return fmt.Errorf("github.ci: CI of %s@%s is failing: %s", p.repo, p.ref, strings.Join(ci.Failed, ", "))
		case ci.State == github.StatePending && !p.allowPending:
			return fmt.Errorf("github.ci: CI of %s@%s is still pending", p.repo, p.ref)
		case ci.Total == 0 && p.requireChecks:
			return fmt.Errorf("github.ci: no CI reported for %s@%s", p.repo, p.ref)
		}
		return rc.Info(srcGitHub, fmt.Sprintf("CI of %s@%s (%.7s): %s", p.repo, p.ref, sha, describeCI(ci)), nil)
	})
}

type prArgs struct {
	repo, base, head, title, body, message string
	files                                  map[string]string
}

func (c *clients) githubPRTool() Tool {
	return tool("github.pr", func(a *argReader) prArgs {
		p := prArgs{
			repo:    a.str("repo", true, repoPattern, expectRepo),
			base:    a.str("base", false, refPattern, "the branch to merge into (default: the repository's default branch)"),
			head:    a.str("head", true, refPattern, "the new branch to create for the pull request"),
			title:   a.str("title", true, nil, "the pull request's title"),
			body:    a.str("body", false, nil, "the pull request's description"),
			message: a.str("message", false, nil, "the commit message (default: the title)"),
			files:   a.strMap("files", true, "the files to commit, path: content"),
		}
		for path := range p.files {
			if !pathPattern.MatchString(path) || strings.Contains(path, "..") {
				a.problem("args.files: path %q must be a relative path (letters, digits, '.', '_', '-', '/'; no '..')", path)
			}
		}
		return p
	}, func(ctx context.Context, rc *executor.RunContext, p prArgs) error {
		gh, err := c.GitHub()
		if err != nil {
			return err
		}
		if p.base == "" {
			if p.base, err = gh.DefaultBranch(ctx, p.repo); err != nil {
				return err
			}
		}
		res, err := c.openPR(ctx, rc, gh, prRequest{Repo: p.repo, Base: p.base, Branch: p.head, Title: p.title, Body: p.body,
			Message: orDefault(p.message, p.title), Files: p.files})
		if err != nil {
			return err
		}
		rc.SetOutput("pull_request", res.URL)
		return rc.Artifact(ctx, executor.ArtifactLink, "Pull request: "+p.title, res.URL)
	})
}

type issueArgs struct {
	repo, title, body, fingerprint string
	labels                         []string
}

var fingerprintPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

func (c *clients) githubIssueTool() Tool {
	return tool("github.issue", func(a *argReader) issueArgs {
		return issueArgs{
			repo:        a.str("repo", true, repoPattern, expectRepo),
			title:       a.str("title", true, nil, "the issue's title"),
			body:        a.str("body", false, nil, "the issue's text"),
			labels:      a.list("labels"),
			fingerprint: a.str("fingerprint", false, fingerprintPattern, "up to 32 letters, digits, '.', '_' or '-'; an open issue with the same fingerprint gets a comment instead"),
		}
	}, func(ctx context.Context, rc *executor.RunContext, p issueArgs) error {
		gh, err := c.GitHub()
		if err != nil {
			return err
		}
		body, labels := c.redact(p.body), p.labels
		if p.fingerprint != "" {
			label := fingerprintPrefix + p.fingerprint
			labels = append(labels, label)
			body += fmt.Sprintf("\n\n<!-- %s -->\n", label)
			found, ok, err := gh.FindOpenIssue(ctx, p.repo, label)
			if err != nil {
				return err
			}
			if ok {
				u, err := gh.CommentIssue(ctx, p.repo, found.Number, body)
				if err != nil {
					return err
				}
				_ = rc.Artifact(ctx, executor.ArtifactLink, fmt.Sprintf("Comment on issue #%d", found.Number), u)
				return rc.Success(srcGitHub, fmt.Sprintf("commented on open issue #%d: %s", found.Number, u), nil)
			}
		}
		n, u, err := gh.OpenIssue(ctx, p.repo, c.redact(p.title), body, labels)
		if err != nil {
			return err
		}
		_ = rc.Artifact(ctx, executor.ArtifactLink, fmt.Sprintf("Issue #%d", n), u)
		return rc.Success(srcGitHub, fmt.Sprintf("opened issue #%d: %s", n, u), nil)
	})
}
