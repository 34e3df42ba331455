package vercel

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/opscontrolroom/opsd/internal/backoff"
)

// DefaultPoll is how often WaitForDeployment polls when given no interval.
const DefaultPoll = 5 * time.Second

// DeploymentFailedError reports a deployment that ended in a terminal state
// other than READY: ERROR, CANCELED, DELETED or BLOCKED.
type DeploymentFailedError struct {
	ID, State, Code, Message string
}

func (e *DeploymentFailedError) Error() string {
	s := fmt.Sprintf("deployment %s ended %s", e.ID, e.State)
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// WaitForDeployment polls the deployment every poll (DefaultPoll if <= 0) until
// it reaches a terminal readyState (Terminal), and returns it. Any terminal
// state but READY comes with a *DeploymentFailedError naming it. Temporary
// API errors (429, 5xx) are waited out as c.Retry says; a state Vercel does
// not document is polled on, and named if ctx ends first.
func (c *Client) WaitForDeployment(ctx context.Context, id string, poll time.Duration) (*Deployment, error) {
	if poll <= 0 {
		poll = DefaultPoll
	}
	last, failures := "", 0
	for {
		d, err := c.GetDeployment(ctx, id)
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("wait for deployment %s%s: %w", id, lastState(last), ctx.Err())
		case err != nil:
			failures++
			if perr := c.Retry.Pause(ctx, failures, err); perr != nil {
				return nil, fmt.Errorf("wait for deployment%s: %w", lastState(last), perr)
			}
			continue
		case d.State == StateReady:
			return d, nil
		case d.Done():
			return d, &DeploymentFailedError{ID: d.ID, State: d.State, Code: d.ErrorCode, Message: d.ErrorMessage}
		}
		failures, last = 0, d.State
		if err := backoff.Sleep(ctx, poll); err != nil {
			return nil, fmt.Errorf("wait for deployment %s%s: %w", id, lastState(last), err)
		}
	}
}

func lastState(s string) string {
	if s == "" {
		return ""
	}
	if !slices.Contains(InProgress, s) {
		return fmt.Sprintf(" (last readyState %s, which Vercel does not document)", s)
	}
	return " (last readyState " + s + ")"
}
