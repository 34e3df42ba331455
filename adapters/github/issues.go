package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	gh "github.com/google/go-github/v84/github"

	"github.com/opscontrolroom/opsd/adapters"
)

// Issue is an open issue found by FindOpenIssue.
type Issue struct {
	Number int
	Title  string
	URL    string // html_url
}

// OpenPullRequest opens a pull request from head into base and returns its
// number and URL. If one is already open for head and base, the error wraps
// ErrAlreadyExists.
func (c *Client) OpenPullRequest(ctx context.Context, repo, head, base, title, body string) (int, string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return 0, "", err
	}
	pr, _, err := c.gh.PullRequests.Create(ctx, owner, name, &gh.NewPullRequest{
		Title: gh.Ptr(title), Head: gh.Ptr(head), Base: gh.Ptr(base), Body: gh.Ptr(body),
	})
	if err != nil {
		err = translate(err)
		// GitHub's 422 for a duplicate reads "A pull request already exists
		// for owner:head." with the validation code "custom"; other 422s
		// (missing head, no commits between) carry codes such as "invalid".
		if statusOf(err) == http.StatusUnprocessableEntity && isDuplicatePR(err) {
			return 0, "", fmt.Errorf("%s: open pull request %s -> %s in %s: %w: %w", Name, head, base, repo, ErrAlreadyExists, err)
		}
		return 0, "", fmt.Errorf("%s: open pull request %s -> %s in %s: %w", Name, head, base, repo, err)
	}
	return pr.GetNumber(), pr.GetHTMLURL(), nil
}

// FindOpenIssue returns the most recently created open issue carrying label,
// the fingerprint label runbooks put on the issues they open, and whether one
// was found. Pull requests (which the issues API also lists) are skipped.
// A label rather than a search of issue bodies is used because the search API
// is eventually consistent and separately rate limited: an issue opened a
// moment ago must be found, or a retried runbook would open a duplicate.
func (c *Client) FindOpenIssue(ctx context.Context, repo, label string) (Issue, bool, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return Issue{}, false, err
	}
	if label == "" {
		return Issue{}, false, fmt.Errorf("%s: find issue in %s: empty label", Name, repo)
	}
	opts := &gh.IssueListByRepoOptions{
		State: "open", Labels: []string{label}, Sort: "created", Direction: "desc",
		ListOptions: gh.ListOptions{PerPage: perPage},
	}
	for {
		issues, resp, err := c.gh.Issues.ListByRepo(ctx, owner, name, opts)
		if err != nil {
			return Issue{}, false, fmt.Errorf("%s: list issues labelled %q in %s: %w", Name, label, repo, translate(err))
		}
		for _, is := range issues {
			if is.IsPullRequest() {
				continue
			}
			return Issue{Number: is.GetNumber(), Title: is.GetTitle(), URL: is.GetHTMLURL()}, true, nil
		}
		if resp.NextPage == 0 {
			return Issue{}, false, nil
		}
		opts.ListOptions.Page = resp.NextPage
	}
}

// OpenIssue opens an issue and returns its number and URL.
func (c *Client) OpenIssue(ctx context.Context, repo, title, body string, labels []string) (int, string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return 0, "", err
	}
	req := &gh.IssueRequest{Title: gh.Ptr(title), Body: gh.Ptr(body)}
	if len(labels) > 0 {
		req.Labels = &labels
	}
	is, _, err := c.gh.Issues.Create(ctx, owner, name, req)
	if err != nil {
		return 0, "", fmt.Errorf("%s: open issue in %s: %w", Name, repo, translate(err))
	}
	return is.GetNumber(), is.GetHTMLURL(), nil
}

// CommentIssue comments on an issue or pull request and returns the comment's URL.
func (c *Client) CommentIssue(ctx context.Context, repo string, number int, body string) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", err
	}
	cm, _, err := c.gh.Issues.CreateComment(ctx, owner, name, number, &gh.IssueComment{Body: gh.Ptr(body)})
	if err != nil {
		return "", fmt.Errorf("%s: comment on %s#%d: %w", Name, repo, number, translate(err))
	}
	return cm.GetHTMLURL(), nil
}

// isDuplicatePR recognises GitHub's duplicate pull request error, which has
// no dedicated code: only its message tells it from other validation errors.
func isDuplicatePR(err error) bool {
	var api *adapters.APIError
	return errors.As(err, &api) && strings.Contains(api.Message, "pull request already exists")
}
