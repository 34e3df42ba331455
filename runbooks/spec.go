package runbooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/executor"
)

// specRunbook writes the four Spec Kit files for a target from the run's
// intent and notes: into spec_docs, and as a pull request.
type specRunbook struct {
	c   *clients
	run *executor.Run

	target, repo, base string
	files              []specFile
	targets            []executor.Target

	gh     *github.Client
	branch string
	pr     prResult
	stored bool
}

var (
	_ executor.DryRunner      = (*specRunbook)(nil)
	_ executor.PhaseTimeouter = (*specRunbook)(nil)
	_ executor.Targeter       = (*specRunbook)(nil)
)

// Targets: the repository the pull request is opened in.
func (s *specRunbook) Targets() []executor.Target { return s.targets }

// PhaseTimeout: every phase is a handful of API calls.
func (s *specRunbook) PhaseTimeout(phase string) time.Duration {
	if phase == executor.PhaseAction || phase == executor.PhaseVerify {
		return 5 * time.Minute
	}
	return 2 * time.Minute
}

// Validate reads target, repo, branch, notes and the intent, and renders
// the files (rendering touches no integration).
func (s *specRunbook) Validate(ctx context.Context, rc *executor.RunContext) error {
	p := s.c.params(rc)
	s.repo = p.str([]string{"repo"}, s.c.cfg.GitHub.Repo)
	p.required("repo", s.repo, expectRepo+" to open the pull request in (or set integrations.defaults.repo or integrations.github.repo)")
	p.shape("repo", s.repo, repoPattern, expectRepo)
	_, repoName := splitRepo(s.repo)
	s.target = p.str([]string{"target"}, strings.ToLower(repoName))
	p.required("target", s.target, "the spec's name, used in the slugs <target>/<file> (defaults to the repository name)")
	p.shape("target", s.target, slugPattern, expectSlug)
	s.base = p.str([]string{"branch"})
	p.shape("branch", s.base, refPattern, expectRef)
	notes := p.text("notes")
	intent := strings.TrimSpace(s.run.Intent)
	if intent == "" {
		intent = p.text("intent")
	}
	if intent == "" && notes == "" {
		p.problem("the run's intent (runs.intent) or input %q must say what to specify", "notes")
	}
	if err := p.err(); err != nil {
		return err
	}
	var err error
	if s.targets, err = s.c.resolveTargets(s.run, []executor.Target{newTarget(targetRepo, s.repo, p.inputOrigin("repo"), true)}); err != nil {
		return err
	}
	p.report(rc)
	d := newSpecData(s.target, s.repo, s.run.Env, s.run.ID, s.c.deps.Now().UTC().Format("2006-01-02"), intent, notes)
	if s.files, err = renderSpec(d, "specs/"+s.target); err != nil {
		return err
	}
	s.branch = fmt.Sprintf("opsd/spec-%s-%s", branchSafe(s.target), shortID(s.run.ID))
	return rc.Info(srcSystem, fmt.Sprintf("spec %s: %d files rendered for %s", s.target, len(s.files), s.repo), nil)
}

// Preflight checks that the repository and the base branch are reachable.
func (s *specRunbook) Preflight(ctx context.Context, rc *executor.RunContext) error {
	ctx = traced(ctx, rc, "")
	var err error
	if s.gh, err = s.c.GitHub(); err != nil {
		return err
	}
	if s.base == "" {
		if s.base, err = s.gh.DefaultBranch(ctx, s.repo); err != nil {
			return fmt.Errorf("repository %s is not reachable: %w", s.repo, err)
		}
	}
	sha, err := s.gh.GetRef(ctx, s.repo, s.base)
	if errors.Is(err, github.ErrRefNotFound) {
		return fmt.Errorf("base branch %q does not exist in %s", s.base, s.repo)
	}
	if err != nil {
		return err
	}
	return rc.Info(srcGitHub, fmt.Sprintf("%s@%s is %.12s; the pull request will target it", s.repo, s.base, sha), nil)
}

// DescribeAction says what would be written.
func (s *specRunbook) DescribeAction(ctx context.Context, rc *executor.RunContext) (string, error) {
	return fmt.Sprintf("upsert spec_docs %s and open a pull request in %s from %s into %s adding %s",
		strings.Join(s.slugs(), ", "), s.repo, s.branch, s.base, strings.Join(s.paths(), ", ")), nil
}

func (s *specRunbook) slugs() []string {
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = s.target + "/" + f.Name
	}
	return out
}

func (s *specRunbook) paths() []string {
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = f.Path
	}
	return out
}

// Action upserts spec_docs, then commits the files on a new branch and
// opens the pull request.
func (s *specRunbook) Action(ctx context.Context, rc *executor.RunContext) error {
	ctx = traced(ctx, rc, "")
	args, _ := json.Marshal(map[string]any{"slugs": s.slugs()})
	err := rc.Step(ctx, executor.StepSpec{ID: "spec_docs", Title: "Save the spec in spec_docs", Args: args}, func(ctx context.Context) error {
		for _, f := range s.files {
			slug := s.target + "/" + f.Name
			if err := s.c.deps.Store.UpsertSpecDoc(ctx, rc.Lease(), slug, f.Name+".md", s.c.redact(f.Content)); err != nil {
				return fmt.Errorf("save spec doc %s: %w", slug, err)
			}
		}
		s.stored = true
		return rc.Success(srcSystem, fmt.Sprintf("saved %d spec docs: %s", len(s.files), strings.Join(s.slugs(), ", ")), nil)
	})
	if err != nil {
		return err
	}
	files := map[string]string{}
	for _, f := range s.files {
		files[f.Path] = f.Content
	}
	args, _ = json.Marshal(map[string]any{"repo": s.repo, "base": s.base, "head": s.branch, "files": s.paths()})
	return rc.Step(ctx, executor.StepSpec{ID: "pull_request", Title: "Open the spec pull request", Kind: "tool", Tool: "github", Action: "pr", Args: args},
		func(ctx context.Context) error {
			title := firstLine(fmt.Sprintf("Spec Kit for %s: %s", s.target, firstLine(s.run.Intent, 80)), 120)
			title = strings.TrimSuffix(strings.TrimSpace(title), ":")
			body := fmt.Sprintf("Spec Kit files for **%s**, generated by opsd run `%s` (%s).\n\n%s\n\nFiles:\n- %s\n\nThe same files are in the Spec Kit editor as %s.\n",
				s.target, s.run.ID, s.run.Env, s.run.Intent, strings.Join(s.paths(), "\n- "), strings.Join(s.slugs(), ", "))
			var err error
			s.pr, err = s.c.openPR(ctx, rc, s.gh, prRequest{Repo: s.repo, Base: s.base, Branch: s.branch, Title: title, Body: body,
				Message: "Add Spec Kit for " + s.target + " (opsd run " + shortID(s.run.ID) + ")", Files: files})
			return err
		})
}

// Verify checks the branch holds the commit and reports its CI.
func (s *specRunbook) Verify(ctx context.Context, rc *executor.RunContext) error {
	if s.pr.Commit == "" {
		return rc.Info(srcSystem, "dry run: nothing to verify", nil)
	}
	return verifyBranch(traced(ctx, rc, ""), rc, s.gh, s.repo, s.branch, s.pr.Commit)
}

// Summarize links the pull request and attaches the diff.
func (s *specRunbook) Summarize(ctx context.Context, rc *executor.RunContext) error {
	title := "Spec Kit files"
	if s.pr.URL == "" {
		title += " (dry run: not committed)"
	}
	if err := rc.Artifact(ctx, executor.ArtifactDiff, title, newFileDiff(s.files)); err != nil {
		return err
	}
	rc.SetOutput("slugs", s.slugs())
	if s.pr.URL == "" {
		return rc.Info(srcSystem, "Next steps: run again without dry_run to save the spec and open the pull request.", nil)
	}
	if err := rc.Artifact(ctx, executor.ArtifactLink, "Spec pull request", s.pr.URL); err != nil {
		return err
	}
	rc.SetOutput("pull_request", s.pr.URL)
	rc.SetOutput("branch", s.branch)
	return rc.Info(srcSystem, fmt.Sprintf("Next steps: review and edit the spec in the Spec Kit editor (%s) or in %s, settle the open questions in prd.md, then merge.",
		strings.Join(s.slugs(), ", "), s.pr.URL), nil)
}
