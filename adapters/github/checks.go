package github

import (
	"context"
	"fmt"
	"slices"

	gh "github.com/google/go-github/v84/github"
)

// States of a Summary.
const (
	StateSuccess = "success"
	StatePending = "pending"
	StateFailure = "failure"
)

// Summary condenses a commit's statuses or check runs.
//
// State is failure if anything failed, else pending if anything has not
// finished, else success. With nothing reported at all (Total 0) State is
// success — there is nothing to wait for — so a caller that requires checks
// must test Total.
type Summary struct {
	State  string
	Total  int
	Failed []string // names (status contexts, check run names) that failed, sorted
}

// Merge combines two summaries, e.g. commit statuses and check runs.
func (s Summary) Merge(o Summary) Summary {
	out := Summary{Total: s.Total + o.Total, State: StateSuccess}
	out.Failed = append(append([]string{}, s.Failed...), o.Failed...)
	slices.Sort(out.Failed)
	switch {
	case s.State == StateFailure || o.State == StateFailure:
		out.State = StateFailure
	case s.State == StatePending || o.State == StatePending:
		out.State = StatePending
	}
	if len(out.Failed) == 0 {
		out.Failed = nil
	}
	return out
}

// perPage is the page size for every list call: GitHub's maximum.
const perPage = 100

// CombinedStatus summarises the commit statuses (the legacy Status API) of
// sha, reading every page.
func (c *Client) CombinedStatus(ctx context.Context, repo, sha string) (Summary, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return Summary{}, err
	}
	var (
		sum     Summary
		pending bool
	)
	opts := &gh.ListOptions{PerPage: perPage}
	for {
		cs, resp, err := c.gh.Repositories.GetCombinedStatus(ctx, owner, name, sha, opts)
		if err != nil {
			return Summary{}, fmt.Errorf("%s: combined status of %s@%s: %w", Name, repo, sha, translate(err))
		}
		for _, st := range cs.Statuses {
			sum.Total++
			switch st.GetState() {
			case "failure", "error":
				sum.Failed = append(sum.Failed, st.GetContext())
			case "pending":
				pending = true
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	// GitHub's own combined state is "pending" when there are no statuses;
	// it is recomputed here so both summaries follow the rule on Summary.
	sum.State = summarise(&sum, pending)
	return sum, nil
}

// CheckRuns summarises the latest check runs (the Checks API, which GitHub
// Actions reports to) of sha, reading every page.
func (c *Client) CheckRuns(ctx context.Context, repo, sha string) (Summary, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return Summary{}, err
	}
	var (
		sum     Summary
		pending bool
	)
	opts := &gh.ListCheckRunsOptions{Filter: gh.Ptr("latest"), ListOptions: gh.ListOptions{PerPage: perPage}}
	for {
		res, resp, err := c.gh.Checks.ListCheckRunsForRef(ctx, owner, name, sha, opts)
		if err != nil {
			return Summary{}, fmt.Errorf("%s: check runs of %s@%s: %w", Name, repo, sha, translate(err))
		}
		for _, cr := range res.CheckRuns {
			sum.Total++
			if cr.GetStatus() != "completed" {
				pending = true
				continue
			}
			if failedConclusion(cr.GetConclusion()) {
				sum.Failed = append(sum.Failed, cr.GetName())
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	sum.State = summarise(&sum, pending)
	return sum, nil
}

func summarise(s *Summary, pending bool) string {
	slices.Sort(s.Failed)
	switch {
	case len(s.Failed) > 0:
		return StateFailure
	case pending:
		return StatePending
	}
	return StateSuccess
}

// failedConclusion reports whether a completed check run or workflow run
// conclusion counts as a failure. success, neutral and skipped do not; stale
// (superseded) does not either.
func failedConclusion(c string) bool {
	switch c {
	case "failure", "timed_out", "cancelled", "action_required", "startup_failure":
		return true
	}
	return false
}
