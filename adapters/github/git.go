package github

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	gh "github.com/google/go-github/v84/github"

	"github.com/opscontrolroom/opsd/adapters"
)

// GetRef resolves a branch, tag (annotated tags are peeled) or commit sha to
// the commit sha it points at. "refs/heads/x" and "refs/tags/x" are accepted.
// An unknown ref yields an error naming it that wraps ErrRefNotFound.
func (c *Client) GetRef(ctx context.Context, repo, ref string) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", err
	}
	if ref == "" {
		return "", fmt.Errorf("%s: resolve ref in %s: empty ref", Name, repo)
	}
	// GET /commits/{ref} with the sha media type resolves all three kinds of
	// ref in one call; the git refs API would need one call per kind.
	q := strings.TrimPrefix(ref, "refs/")
	sha, _, err := c.gh.Repositories.GetCommitSHA1(ctx, owner, name, q, "")
	if err != nil {
		err = translate(err)
		// GitHub answers 422 "No commit found for SHA: x" for an unknown ref
		// in a repository that exists, 404 when the repository does not
		// exist or the token cannot see it. Both keep GitHub's own message.
		switch statusOf(err) {
		case http.StatusUnprocessableEntity:
			return "", fmt.Errorf("%s: ref %q not found in %s: %w: %w", Name, ref, repo, ErrRefNotFound, err)
		case http.StatusNotFound:
			return "", fmt.Errorf("%s: resolve ref %q: %s: %w: %w", Name, ref, repo, ErrRepoNotFound, err)
		}
		return "", fmt.Errorf("%s: resolve ref %q in %s: %w", Name, ref, repo, err)
	}
	return strings.TrimSpace(sha), nil
}

// DefaultBranch returns the repository's default branch.
func (c *Client) DefaultBranch(ctx context.Context, repo string) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", err
	}
	r, _, err := c.gh.Repositories.Get(ctx, owner, name)
	if err != nil {
		return "", fmt.Errorf("%s: get repository %s: %w", Name, repo, translate(err))
	}
	if r.GetDefaultBranch() == "" {
		return "", fmt.Errorf("%s: repository %s has no default branch (empty repository?)", Name, repo)
	}
	return r.GetDefaultBranch(), nil
}

// CreateBranch creates newBranch at the commit that base (a branch, tag or
// sha) points at and returns that sha. An existing branch wraps ErrAlreadyExists.
func (c *Client) CreateBranch(ctx context.Context, repo, base, newBranch string) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", err
	}
	if newBranch == "" {
		return "", fmt.Errorf("%s: create branch in %s: empty branch name", Name, repo)
	}
	sha, err := c.GetRef(ctx, repo, base)
	if err != nil {
		return "", err
	}
	ref := gh.CreateRef{Ref: "refs/heads/" + strings.TrimPrefix(newBranch, "refs/heads/"), SHA: sha}
	if _, _, err := c.gh.Git.CreateRef(ctx, owner, name, ref); err != nil {
		err = translate(err)
		if statusOf(err) == http.StatusUnprocessableEntity {
			return "", fmt.Errorf("%s: create branch %q in %s: %w: %w", Name, newBranch, repo, ErrAlreadyExists, err)
		}
		return "", fmt.Errorf("%s: create branch %q in %s: %w", Name, newBranch, repo, err)
	}
	return sha, nil
}

// CommitFiles writes files (path -> UTF-8 content) to branch as one commit on
// top of its head and returns the new commit's sha.
//
// It uses the Git data API (tree with inline contents, commit, fast-forward
// ref update) rather than the Contents API: one atomic commit whatever the
// number of files, and no per-file blob shas to fetch first. If the branch
// moved meanwhile, the ref update is refused (422, not a fast forward) and
// nothing is committed to the branch.
func (c *Client) CommitFiles(ctx context.Context, repo, branch, message string, files map[string]string) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("%s: commit to %s@%s: no files", Name, repo, branch)
	}
	branch = strings.TrimPrefix(branch, "refs/heads/")
	head, _, err := c.gh.Git.GetRef(ctx, owner, name, "heads/"+branch)
	if err != nil {
		err = translate(err)
		if adapters.IsNotFound(err) {
			return "", fmt.Errorf("%s: branch %q not found in %s: %w: %w", Name, branch, repo, ErrRefNotFound, err)
		}
		return "", fmt.Errorf("%s: get branch %q in %s: %w", Name, branch, repo, err)
	}
	parentSHA := head.GetObject().GetSHA()
	parent, _, err := c.gh.Git.GetCommit(ctx, owner, name, parentSHA)
	if err != nil {
		return "", fmt.Errorf("%s: get commit %s in %s: %w", Name, parentSHA, repo, translate(err))
	}

	paths := make([]string, 0, len(files))
	for p := range files {
		if p == "" || strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") {
			return "", fmt.Errorf("%s: commit to %s@%s: invalid path %q", Name, repo, branch, p)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	entries := make([]*gh.TreeEntry, 0, len(paths))
	for _, p := range paths {
		entries = append(entries, &gh.TreeEntry{
			Path: gh.Ptr(p), Mode: gh.Ptr("100644"), Type: gh.Ptr("blob"), Content: gh.Ptr(files[p]),
		})
	}
	// Creating git objects is safe to repeat: an object nothing points at yet
	// is harmless, so these POSTs may be retried like GETs.
	octx := adapters.Idempotent(ctx)
	tree, _, err := c.gh.Git.CreateTree(octx, owner, name, parent.GetTree().GetSHA(), entries)
	if err != nil {
		return "", fmt.Errorf("%s: create tree in %s: %w", Name, repo, translate(err))
	}
	commit, _, err := c.gh.Git.CreateCommit(octx, owner, name, gh.Commit{
		Message: gh.Ptr(message),
		Tree:    &gh.Tree{SHA: tree.SHA},
		Parents: []*gh.Commit{{SHA: gh.Ptr(parentSHA)}},
	}, nil)
	if err != nil {
		return "", fmt.Errorf("%s: create commit in %s: %w", Name, repo, translate(err))
	}
	if _, _, err := c.gh.Git.UpdateRef(ctx, owner, name, "heads/"+branch, gh.UpdateRef{SHA: commit.GetSHA()}); err != nil {
		return "", fmt.Errorf("%s: move %s@%s to %s: %w", Name, repo, branch, commit.GetSHA(), translate(err))
	}
	return commit.GetSHA(), nil
}
