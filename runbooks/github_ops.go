package runbooks

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/executor"
)

// prRequest is a pull request that adds files on a new branch.
type prRequest struct {
	Repo, Base, Branch string
	Title, Body        string
	Message            string            // commit message
	Files              map[string]string // path -> content
}

// prResult is the pull request opened (or found) and the commit it holds.
type prResult struct {
	Commit string
	Number int
	URL    string
}

// openPR creates req.Branch at req.Base, commits req.Files on it and opens
// the pull request. Everything sent is redacted first. A branch or pull
// request left by an earlier attempt of the same run is reused.
func (c *clients) openPR(ctx context.Context, rc *executor.RunContext, gh *github.Client, req prRequest) (prResult, error) {
	var res prResult
	_, err := gh.CreateBranch(ctx, req.Repo, req.Base, req.Branch)
	switch {
	case errors.Is(err, github.ErrAlreadyExists):
		_ = rc.Warn(srcGitHub, fmt.Sprintf("branch %s already exists in %s (an earlier attempt?); committing on top of it", req.Branch, req.Repo), nil)
	case err != nil:
		return res, err
	default:
		_ = rc.Info(srcGitHub, fmt.Sprintf("created branch %s from %s in %s", req.Branch, req.Base, req.Repo), nil)
	}
	files := make(map[string]string, len(req.Files))
	for p, content := range req.Files {
		files[p] = c.redact(content)
	}
	if res.Commit, err = gh.CommitFiles(ctx, req.Repo, req.Branch, c.redact(req.Message), files); err != nil {
		return res, err
	}
	_ = rc.Info(srcGitHub, fmt.Sprintf("committed %s to %s@%s: %.12s", plural(len(files), "file"), req.Repo, req.Branch, res.Commit), map[string]any{"sha": res.Commit})
	res.Number, res.URL, err = gh.OpenPullRequest(ctx, req.Repo, req.Branch, req.Base, c.redact(req.Title), c.redact(req.Body))
	if errors.Is(err, github.ErrAlreadyExists) {
		res.URL = fmt.Sprintf("%s/%s/pulls?q=%s", githubWebURL(c.cfg.GitHub.APIURL), req.Repo, url.QueryEscape("is:pr is:open head:"+req.Branch))
		_ = rc.Warn(srcGitHub, fmt.Sprintf("a pull request from %s is already open; the new commit was added to it: %s", req.Branch, res.URL), nil)
		return res, nil
	}
	if err != nil {
		return res, err
	}
	_ = rc.Success(srcGitHub, fmt.Sprintf("opened pull request #%d: %s", res.Number, res.URL), map[string]any{"number": res.Number, "url": res.URL})
	return res, nil
}

// verifyBranch checks that branch still points at commit.
func verifyBranch(ctx context.Context, rc *executor.RunContext, gh *github.Client, repo, branch, commit string) error {
	sha, err := gh.GetRef(ctx, repo, branch)
	if err != nil {
		return fmt.Errorf("branch %s of %s: %w", branch, repo, err)
	}
	if sha != commit {
		return fmt.Errorf("branch %s of %s is at %.12s, not at the commit opsd made (%.12s): someone pushed to it", branch, repo, sha, commit)
	}
	_ = rc.Success(srcGitHub, fmt.Sprintf("%s@%s holds the commit %.12s", repo, branch, commit), nil)
	ci, err := ciStatus(ctx, gh, repo, commit)
	if err != nil {
		return err
	}
	level := executor.LevelInfo
	if ci.State == github.StateFailure {
		level = executor.LevelWarn
	}
	return rc.Emit(level, srcGitHub, "CI of the pull request's commit: "+describeCI(ci), nil)
}

// branchSafe makes s usable inside a branch name.
func branchSafe(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			b[i] = '-'
		}
	}
	return string(b)
}

// shortID is the first 8 characters of a run id.
func shortID(id string) string { return id[:min(len(id), 8)] }

// plural is "1 file", "2 files".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
