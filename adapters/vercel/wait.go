package vercel

import (
	"context"
	"fmt"
	"time"

	"github.com/opscontrolroom/opsd/adapters"
)

// DefaultPoll is how often WaitForDeployment polls when given no interval.
const DefaultPoll = 5 * time.Second

// DeploymentFailedError reports a deployment that ended in ERROR, CANCELED or
// DELETED instead of READY.
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
// it is READY, and returns it. A deployment that ends ERROR or CANCELED is
// returned together with a *DeploymentFailedError. Temporary API errors (429,
// 5xx) are polled through; the context bounds the wait.
func (c *Client) WaitForDeployment(ctx context.Context, id string, poll time.Duration) (*Deployment, error) {
	if poll <= 0 {
		poll = DefaultPoll
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for deployment %s: %w", id, ctx.Err())
		case <-timer.C:
		}
		d, err := c.GetDeployment(ctx, id)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("wait for deployment %s: %w", id, ctx.Err())
		case err != nil && !adapters.IsTemporary(err):
			return nil, fmt.Errorf("wait for deployment: %w", err)
		case err == nil && d.State == StateReady:
			return d, nil
		case err == nil && d.Done():
			return d, &DeploymentFailedError{ID: d.ID, State: d.State, Code: d.ErrorCode, Message: d.ErrorMessage}
		}
		timer.Reset(poll)
	}
}
