// Package github is opsd's adapter for the GitHub REST API: resolving refs,
// reading commit statuses and check runs, dispatching and watching Actions
// workflows, and opening branches, commits, pull requests, issues and comments
// for runbooks.
//
// It is built on go-github v84 (github.com/google/go-github/v84), the newest
// major version the Go module proxy served when this package was written
// (v85 did not exist). v75, which go.mod already listed, was not used: its
// CreateWorkflowDispatchEventByFileName returns only a *Response, with no
// return_run_details field, so it cannot learn the id of the run a dispatch
// starts; v84 sends return_run_details and decodes the run id (GitHub added
// both to the API in February 2026). See DispatchWorkflow for the fallback
// where the API does not return it.
//
// Vendor errors are translated at this boundary into *adapters.APIError.
package github

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	gh "github.com/google/go-github/v84/github"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/internal/backoff"
)

// Name is the adapter name used in calls, errors and logs.
const Name = "github"

// DefaultBaseURL is the public GitHub REST API.
const DefaultBaseURL = "https://api.github.com/"

// Defaults for the dispatch fallback (see DispatchWorkflow).
const (
	DefaultDispatchPoll    = 2 * time.Second
	DefaultDispatchTimeout = 60 * time.Second
)

// Client talks to one GitHub (or GitHub Enterprise Server) API.
type Client struct {
	gh *gh.Client

	// DispatchPoll is how often DispatchWorkflow lists runs while looking for
	// the run it started, when the API did not return the run id. Default 2s.
	DispatchPoll time.Duration
	// DispatchTimeout bounds that search. Default 60s.
	DispatchTimeout time.Duration
	// Retry is how the polls (WaitForWorkflowRun, the dispatch fallback) ride
	// out rate limits and 5xx: until GitHub's reset or Retry-After, within
	// the caller's deadline. Default adapters.Policy{} (an hour at most per wait).
	Retry adapters.Policy

	now func() time.Time
}

// New returns a Client. o.Token (GITHUB_TOKEN) is required; o.BaseURL
// (GITHUB_API_URL) defaults to https://api.github.com and is used as given, so
// for GitHub Enterprise Server pass the full API root, e.g.
// https://ghe.example.com/api/v3, as GITHUB_API_URL holds inside Actions.
func New(o adapters.Options) (*Client, error) {
	if o.Token == "" {
		return nil, fmt.Errorf("%s: %w: set GITHUB_TOKEN", Name, adapters.ErrNotConfigured)
	}
	c := gh.NewClient(adapters.NewHTTPClient(Name, o)).WithAuthToken(o.Token)
	if o.BaseURL != "" {
		u, err := url.Parse(o.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s: invalid base URL %q", Name, o.BaseURL)
		}
		// go-github resolves relative paths against BaseURL, which therefore
		// must end in a slash. WithEnterpriseURLs is not used: it appends
		// /api/v3/ to any host, which GITHUB_API_URL already includes.
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		c.BaseURL = u
	}
	return &Client{
		gh:              c,
		DispatchPoll:    DefaultDispatchPoll,
		DispatchTimeout: DefaultDispatchTimeout,
		now:             time.Now,
	}, nil
}

// ownerAndName matches GitHub's rules loosely: owners are alphanumerics and
// hyphens, repository names add dots and underscores.
var ownerAndName = regexp.MustCompile(`^([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100})$`)

// splitRepo validates "owner/name" and returns its parts.
func splitRepo(repo string) (owner, name string, err error) {
	m := ownerAndName.FindStringSubmatch(repo)
	if m == nil || m[2] == "." || m[2] == ".." {
		return "", "", &InvalidRepoError{Repo: repo}
	}
	return m[1], m[2], nil
}

// InvalidRepoError reports a repository not given as "owner/name".
type InvalidRepoError struct{ Repo string }

func (e *InvalidRepoError) Error() string {
	return fmt.Sprintf("%s: invalid repository %q: want \"owner/name\"", Name, e.Repo)
}

// pollLoop calls f every interval until it reports done, returns an error
// that retry does not wait out, or ctx ends. f runs once immediately. A
// temporary error (a rate limit, a 5xx) is waited out with retry.Pause, so a
// long wait survives the limits GitHub documents.
func pollLoop(ctx context.Context, interval time.Duration, retry adapters.Policy, f func() (bool, error)) error {
	if interval <= 0 {
		interval = time.Second
	}
	failures := 0
	for {
		done, err := f()
		if done {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			if perr := retry.Pause(ctx, failures, err); perr != nil {
				return perr
			}
			continue
		}
		failures = 0
		if err := backoff.Sleep(ctx, interval); err != nil {
			return err
		}
	}
}
