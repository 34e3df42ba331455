package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Plan is the RunbookPlan the frontend stores in runs.plan.
type Plan struct {
	ID           string      `json:"id"`
	Kind         string      `json:"kind"`
	Title        string      `json:"title"`
	Summary      string      `json:"summary"`
	Inputs       []PlanInput `json:"inputs"`
	Risks        []PlanRisk  `json:"risks"`
	Integrations []string    `json:"integrations"`
}

// PlanInput is one input of a plan.
type PlanInput struct {
	Key     string   `json:"key"`
	Label   string   `json:"label"`
	Type    string   `json:"type"`
	Options []string `json:"options,omitempty"`
	Value   any      `json:"value"`
}

// PlanRisk is one risk of a plan; level block stops the run before its
// action phase unless it is approved.
type PlanRisk struct {
	Level   string `json:"level"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ParsePlan decodes runs.plan; an absent plan is an empty one.
func ParsePlan(raw json.RawMessage) (*Plan, error) {
	p := &Plan{}
	if len(raw) == 0 || string(raw) == "null" {
		return p, nil
	}
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, fmt.Errorf("runs.plan is not a RunbookPlan: %w", err)
	}
	return p, nil
}

// MergeInputs gives a run's inputs: runs.input first, then the plan's input
// values for keys runs.input does not set. Unparseable JSON contributes
// nothing here; validation reports it.
func MergeInputs(run *Run) map[string]any {
	out := map[string]any{}
	if p, err := ParsePlan(run.Plan); err == nil {
		for _, in := range p.Inputs {
			if in.Key != "" && in.Value != nil {
				out[in.Key] = in.Value
			}
		}
	}
	if len(run.Input) > 0 {
		var m map[string]any
		if err := json.Unmarshal(run.Input, &m); err == nil {
			for k, v := range m {
				out[k] = v
			}
		}
	}
	return out
}

// Notification is sent on a terminal status and when a run waits for approval.
type Notification struct {
	RunID   string `json:"run_id"`
	Kind    string `json:"kind"`
	Env     string `json:"env"`
	Lane    string `json:"lane"`
	Intent  string `json:"intent"`
	Event   string `json:"event"` // success, error, canceled, waiting_for_approval
	Message string `json:"message,omitempty"`
}

// Notifier delivers notifications (Slack-compatible or generic webhooks).
// A failing notification never fails the run.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

func (d *Daemon) notify(run *Run, event, message string) {
	if d.cfg.Notifier == nil {
		return
	}
	n := Notification{RunID: run.ID, Kind: run.Kind, Env: run.Env, Lane: run.Lane, Intent: d.cfg.Redactor.String(run.Intent),
		Event: event, Message: d.cfg.Redactor.String(message)}
	d.goBG(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.cfg.Notifier.Notify(ctx, n); err != nil {
			d.log.Warn("notification failed", zap.String("run_id", run.ID), zap.String("event", event), zap.Error(err))
		}
	})
}
