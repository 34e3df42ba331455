package vercel

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Event is one build-log event of a deployment.
type Event struct {
	Type    string // "stdout", "stderr", "command", "delimiter", "exit", "deployment-state", ...
	Created time.Time
	Text    string
}

// DeploymentEvents returns the last limit build-log events of a deployment in
// chronological order (GET /v3/deployments/{id}/events, not followed); limit
// <= 0 returns all of them.
func (c *Client) DeploymentEvents(ctx context.Context, id string, limit int) ([]Event, error) {
	q := url.Values{}
	q.Set("follow", "0")
	if limit > 0 {
		// Newest first, so the limit keeps the end of the log where failures are.
		q.Set("direction", "backward")
		q.Set("limit", strconv.Itoa(limit))
	} else {
		q.Set("direction", "forward")
		q.Set("limit", "-1")
	}
	// Vercel documents two shapes: {type, created, payload: {text, date, ...}}
	// and the flat {type, created, date, text, ...}; read both.
	var raw []struct {
		Type    string `json:"type"`
		Created int64  `json:"created"`
		Date    int64  `json:"date"`
		Text    string `json:"text"`
		Payload *struct {
			Text string `json:"text"`
			Date int64  `json:"date"`
		} `json:"payload"`
	}
	if err := c.do(ctx, "GET", "/v3/deployments/"+seg(hostOrID(id))+"/events", q, nil, &raw); err != nil {
		return nil, fmt.Errorf("deployment events of %s: %w", id, err)
	}
	out := make([]Event, 0, len(raw))
	for _, r := range raw {
		text, date := r.Text, r.Date
		if r.Payload != nil {
			text, date = firstNonEmpty(r.Payload.Text, text), firstNonZero(r.Payload.Date, date)
		}
		ms := firstNonZero(r.Created, date)
		out = append(out, Event{Type: r.Type, Created: time.UnixMilli(ms).UTC(), Text: text})
	}
	if limit > 0 {
		slices.Reverse(out)
	}
	return out, nil
}
