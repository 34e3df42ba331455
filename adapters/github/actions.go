package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	gh "github.com/google/go-github/v84/github"
)

// Run is a GitHub Actions workflow run.
type Run struct {
	ID         int64
	WorkflowID int64
	Name       string
	RunNumber  int
	Event      string
	Status     string // queued, in_progress, completed, ...
	Conclusion string // set once completed: success, failure, cancelled, ...
	HeadBranch string
	HeadSHA    string
	HTMLURL    string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Failed reports whether a completed run's conclusion counts as a failure.
func (r Run) Failed() bool { return r.Status == "completed" && failedConclusion(r.Conclusion) }

func runFrom(w *gh.WorkflowRun) Run {
	return Run{
		ID:         w.GetID(),
		WorkflowID: w.GetWorkflowID(),
		Name:       w.GetName(),
		RunNumber:  w.GetRunNumber(),
		Event:      w.GetEvent(),
		Status:     w.GetStatus(),
		Conclusion: w.GetConclusion(),
		HeadBranch: w.GetHeadBranch(),
		HeadSHA:    w.GetHeadSHA(),
		HTMLURL:    w.GetHTMLURL(),
		CreatedAt:  w.GetCreatedAt().Time,
		UpdatedAt:  w.GetUpdatedAt().Time,
	}
}

// DispatchWorkflow triggers workflowFile (e.g. "deploy.yml") on ref (a branch
// or tag) with inputs and returns the id of the run it started.
//
// The request asks GitHub for the run's details (return_run_details, 2026),
// answered with 200 and the run id. Where that is not supported (GitHub
// Enterprise Server, older API versions answer 204 with no body) the run is
// found instead by listing the workflow's runs for the ref with
// event=workflow_dispatch created at or after the dispatch (GitHub's clock, from
// the response's Date header), polling every DispatchPoll for at most
// DispatchTimeout, and taking the earliest. Two dispatches of the same
// workflow and ref within the same second cannot be told apart that way.
//
// The dispatch is never retried once accepted: repeating it would start a
// second run. A rate limit (refused before processing) is waited out as
// c.Retry says and the dispatch sent again; a 400 or 422, which GitHub
// answers before starting anything, is sent once more without
// return_run_details.
func (c *Client) DispatchWorkflow(ctx context.Context, repo, workflowFile, ref string, inputs map[string]string) (int64, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return 0, err
	}
	if workflowFile == "" || strings.Contains(workflowFile, "/") {
		return 0, fmt.Errorf("%s: dispatch in %s: invalid workflow file %q: want a file name such as deploy.yml", Name, repo, workflowFile)
	}
	ref = strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/")
	req := gh.CreateWorkflowDispatchEventRequest{Ref: ref, ReturnRunDetails: gh.Ptr(true)}
	if len(inputs) > 0 {
		req.Inputs = make(map[string]any, len(inputs))
		for k, v := range inputs {
			req.Inputs[k] = v
		}
	}
	sent := c.now()
	details, resp, err := c.gh.Actions.CreateWorkflowDispatchEventByFileName(ctx, owner, name, workflowFile, req)
	for attempt := 1; attempt <= maxDispatchRateLimits && isRateLimit(err); attempt++ {
		// A rate-limited request was refused before GitHub processed it, so
		// sending it again after the wait cannot start a second run.
		if perr := c.Retry.Pause(ctx, attempt, translate(err)); perr != nil {
			return 0, fmt.Errorf("%s: dispatch %s on %s@%s: %w", Name, workflowFile, repo, ref, perr)
		}
		sent = c.now()
		details, resp, err = c.gh.Actions.CreateWorkflowDispatchEventByFileName(ctx, owner, name, workflowFile, req)
	}
	if s := statusOf(translate(err)); s == http.StatusBadRequest || s == http.StatusUnprocessableEntity {
		// A server that does not know return_run_details (GitHub Enterprise
		// Server validating an older schema) refuses the whole request, so
		// nothing was started: send it again without the field; the run is
		// then found by listing (below). A 422 for another reason repeats.
		req.ReturnRunDetails = nil
		sent = c.now()
		details, resp, err = c.gh.Actions.CreateWorkflowDispatchEventByFileName(ctx, owner, name, workflowFile, req)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: dispatch %s on %s@%s: %w", Name, workflowFile, repo, ref, translate(err))
	}
	if id := details.GetWorkflowRunID(); id != 0 {
		return id, nil
	}
	since := sent
	if resp != nil {
		if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			since = d
		}
	}
	id, err := c.findDispatchedRun(ctx, owner, name, workflowFile, ref, since)
	if err != nil {
		return 0, fmt.Errorf("%s: find run of %s dispatched on %s@%s: %w", Name, workflowFile, repo, ref, err)
	}
	return id, nil
}

// maxDispatchRateLimits is how many rate limits a dispatch waits out.
const maxDispatchRateLimits = 3

func isRateLimit(err error) bool {
	var rl *RateLimitError
	return errors.As(translate(err), &rl)
}

// findDispatchedRun polls the workflow's runs for the earliest
// workflow_dispatch run on ref created at or after since.
func (c *Client) findDispatchedRun(parent context.Context, owner, name, file, ref string, since time.Time) (int64, error) {
	ctx, cancel := context.WithTimeout(parent, c.DispatchTimeout)
	defer cancel()
	since = since.UTC().Truncate(time.Second)
	opts := &gh.ListWorkflowRunsOptions{
		Branch:      ref,
		Event:       "workflow_dispatch",
		Created:     ">=" + since.Format(time.RFC3339),
		ListOptions: gh.ListOptions{PerPage: perPage},
	}
	var id int64
	err := pollLoop(ctx, c.DispatchPoll, c.Retry, func() (bool, error) {
		runs, _, err := c.gh.Actions.ListWorkflowRunsByFileName(ctx, owner, name, file, opts)
		if err != nil {
			return false, translate(err)
		}
		var best *gh.WorkflowRun
		for _, r := range runs.WorkflowRuns {
			created := r.GetCreatedAt().Time
			if created.Before(since) {
				continue // the created filter is GitHub's; do not rely on it alone
			}
			if best == nil || created.Before(best.GetCreatedAt().Time) ||
				(created.Equal(best.GetCreatedAt().Time) && r.GetID() < best.GetID()) {
				best = r
			}
		}
		if best == nil {
			return false, nil
		}
		id = best.GetID()
		return true, nil
	})
	if err != nil && parent.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return 0, fmt.Errorf("%w after %s", ErrRunNotFound, c.DispatchTimeout)
	}
	return id, err
}

// WaitForWorkflowRun polls the run every poll until it completes and returns
// its conclusion (success, failure, cancelled, timed_out, ...). Bound the wait
// with ctx.
func (c *Client) WaitForWorkflowRun(ctx context.Context, repo string, runID int64, poll time.Duration) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", err
	}
	var conclusion string
	err = pollLoop(ctx, poll, c.Retry, func() (bool, error) {
		r, _, err := c.gh.Actions.GetWorkflowRunByID(ctx, owner, name, runID)
		if err != nil {
			return false, translate(err)
		}
		if r.GetStatus() != "completed" {
			return false, nil
		}
		conclusion = r.GetConclusion()
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("%s: wait for run %d in %s: %w", Name, runID, repo, err)
	}
	return conclusion, nil
}

// LatestWorkflowRun returns the newest workflow run (any workflow, any
// status) on branch, or an error wrapping ErrNoWorkflowRuns.
func (c *Client) LatestWorkflowRun(ctx context.Context, repo, branch string) (Run, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return Run{}, err
	}
	opts := &gh.ListWorkflowRunsOptions{Branch: branch, ListOptions: gh.ListOptions{PerPage: 1}}
	runs, _, err := c.gh.Actions.ListRepositoryWorkflowRuns(ctx, owner, name, opts)
	if err != nil {
		return Run{}, fmt.Errorf("%s: list runs of %s@%s: %w", Name, repo, branch, translate(err))
	}
	if len(runs.WorkflowRuns) == 0 {
		return Run{}, fmt.Errorf("%s: %s@%s: %w", Name, repo, branch, ErrNoWorkflowRuns)
	}
	return runFrom(runs.WorkflowRuns[0]), nil
}

// maxRunPages bounds how far back FailingWorkflowRuns looks: 500 runs.
const maxRunPages = 5

// FailingWorkflowRuns returns the workflows currently failing on branch: for
// each workflow, its most recent completed run, kept if that run failed;
// newest first, at most limit (limit <= 0 means no limit). A workflow that
// failed and then passed is not failing. Only the branch's latest 500
// completed runs are looked at.
func (c *Client) FailingWorkflowRuns(ctx context.Context, repo, branch string, limit int) ([]Run, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{}
	var out []Run
	opts := &gh.ListWorkflowRunsOptions{Branch: branch, Status: "completed", ListOptions: gh.ListOptions{PerPage: perPage}}
	for page := 0; page < maxRunPages; page++ {
		runs, resp, err := c.gh.Actions.ListRepositoryWorkflowRuns(ctx, owner, name, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: list runs of %s@%s: %w", Name, repo, branch, translate(err))
		}
		for _, w := range runs.WorkflowRuns {
			if seen[w.GetWorkflowID()] {
				continue
			}
			seen[w.GetWorkflowID()] = true
			if r := runFrom(w); r.Failed() {
				out = append(out, r)
				if limit > 0 && len(out) == limit {
					return out, nil
				}
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}
