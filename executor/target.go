package executor

import (
	"fmt"
	"slices"
	"strings"
)

// Target is one thing a run's action touches, as its runbook resolved it
// from the run's inputs and the configuration: a Vercel project or target,
// a GitHub repository, a database, a droplet. Approval and cross-env checks
// are decided on targets, never on runs.env alone.
type Target struct {
	Kind  string `json:"kind"`            // what it is, for people: "Vercel project", "GitHub repository", ...
	Name  string `json:"name"`            // the project, repository, database env, droplet name
	Input string `json:"input,omitempty"` // what chose it, e.g. `input "repo"` or `step build args.project`; "" for configuration
	// Env is the env the target belongs to (a Vercel production target or a
	// project configured for prod is "prod"); "" when it serves any env.
	Env string `json:"env,omitempty"`
	// Production is set by the runbook for targets marked production by
	// configuration and for Vercel production deployments. Targets whose Env
	// is one of Policy.ApprovalEnvs are production too.
	Production bool `json:"production,omitempty"`
	// Write says the action changes the target; read-only targets (health
	// checks, schema introspection, CI status) never need approval.
	Write bool `json:"write"`
}

// String names the target for events and error messages.
func (t Target) String() string {
	s := t.Kind + " " + t.Name
	if t.Input != "" {
		s += " (" + t.Input + ")"
	}
	return s
}

// Targeter is implemented by runbooks that say what their action touches.
// The executor calls Targets right after Validate succeeds, so it may
// depend on what Validate resolved (and must not touch any integration),
// and again before the action phase, for targets learnt in preflight.
type Targeter interface {
	Targets() []Target
}

// Policy decides, from what a run resolved to, whether it may run and
// whether it waits for approval before its action phase.
type Policy struct {
	// ApprovalEnvs are the production envs: a deploy labelled with one, and
	// a write to a target of one, need approval. Default prod; an empty
	// (non-nil) list means none.
	ApprovalEnvs []string
	// AllowCrossEnv lets a run write to a target of another env (a dev run
	// deploying to Vercel production); such a run still needs approval when
	// the target is production. Default false: refused at validate.
	AllowCrossEnv bool
}

// DefaultPolicy holds prod for approval and refuses cross-env writes.
func DefaultPolicy() *Policy { return &Policy{ApprovalEnvs: []string{"prod"}} }

// CheckTargets refuses a run that writes to a target of another env,
// unless AllowCrossEnv. The error wraps ErrValidation and names the run's
// env and each offending target with its env.
func (p *Policy) CheckTargets(run *Run, targets []Target) error {
	if p.AllowCrossEnv {
		return nil
	}
	var bad []string
	for _, t := range targets {
		if t.Write && t.Env != "" && t.Env != run.Env {
			bad = append(bad, fmt.Sprintf("%s belongs to env %s", t, t.Env))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the run's env is %s but it would write to another env's target: %s; submit it with the target's env, or set policy.allow_cross_env: true",
		ErrValidation, run.Env, strings.Join(bad, "; "))
}

// NeedsApproval says whether the run waits for approval before its action
// phase, and why: a block risk in its plan, a deploy labelled with an
// approval env, or a write to a production target whatever runs.env says.
func (p *Policy) NeedsApproval(run *Run, targets []Target) (bool, string) {
	var why []string
	if pl, err := ParsePlan(run.Plan); err == nil {
		var blocks []string
		for _, r := range pl.Risks {
			if strings.EqualFold(r.Level, "block") {
				blocks = append(blocks, fmt.Sprintf("%s (%s)", r.Message, r.Code))
			}
		}
		if len(blocks) > 0 {
			why = append(why, "the plan has a blocking risk: "+strings.Join(blocks, "; "))
		}
	}
	if run.Kind == "deploy" && slices.Contains(p.ApprovalEnvs, run.Env) {
		why = append(why, fmt.Sprintf("deploys to %s need approval (approval_envs)", run.Env))
	}
	var prod []string
	for _, t := range targets {
		if t.Write && (t.Production || (t.Env != "" && slices.Contains(p.ApprovalEnvs, t.Env))) {
			prod = append(prod, t.String())
		}
	}
	if len(prod) > 0 {
		why = append(why, "it writes to production: "+strings.Join(prod, ", "))
	}
	return len(why) > 0, strings.Join(why, "; ")
}

// DefaultApprovalPolicy is DefaultPolicy's decision for a run that declares
// no targets: a block risk, or a deploy to prod.
func DefaultApprovalPolicy(run *Run) (bool, string) {
	return DefaultPolicy().NeedsApproval(run, nil)
}
