package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Runbook is the work of one run, split into the five phases. The runbooks
// package implements it for the five kinds and for templates.
type Runbook interface {
	Validate(ctx context.Context, rc *RunContext) error
	Preflight(ctx context.Context, rc *RunContext) error
	Action(ctx context.Context, rc *RunContext) error
	Verify(ctx context.Context, rc *RunContext) error
	Summarize(ctx context.Context, rc *RunContext) error
}

// PhaseTimeouter is implemented by runbooks with their own phase time limits.
type PhaseTimeouter interface {
	PhaseTimeout(phase string) time.Duration
}

// DryRunner is implemented by runbooks that can say what their action phase
// would do; a dry run logs it instead of acting.
type DryRunner interface {
	DescribeAction(ctx context.Context, rc *RunContext) (string, error)
}

// Resolver picks the runbook of a run (its template, or its kind).
type Resolver interface {
	Resolve(ctx context.Context, run *Run) (Runbook, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, run *Run) (Runbook, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, run *Run) (Runbook, error) { return f(ctx, run) }

// ErrValidation marks a run's inputs as bad: the run fails in validate and
// touches no integration.
var ErrValidation = errors.New("invalid run")

// RunContext is what a runbook gets: the run, its inputs, and the ways to
// report (events, chatty logs, artifacts, steps, output).
type RunContext struct {
	Run    *Run
	Inputs map[string]any

	emitter     *Emitter
	store       Store
	worker      string // the daemon's worker id: with Run.Attempt, the lease
	redact      Redactor
	maxArtifact int
	stepIdx     int

	mu     sync.Mutex
	output map[string]any
}

// Phase is the phase in progress.
func (rc *RunContext) Phase() string {
	rc.emitter.mu.Lock()
	defer rc.emitter.mu.Unlock()
	return rc.emitter.phase
}

// Emit writes an event. source is the integration (Vercel, GitHub,
// DigitalOcean, Supabase, Kubernetes) or System.
func (rc *RunContext) Emit(level, source, message string, data any) error {
	return rc.emitter.Emit(level, source, message, data)
}

// Info, Warn, Error and Success are Emit at that level.
func (rc *RunContext) Info(source, msg string, data any) error {
	return rc.Emit(LevelInfo, source, msg, data)
}
func (rc *RunContext) Warn(source, msg string, data any) error {
	return rc.Emit(LevelWarn, source, msg, data)
}
func (rc *RunContext) Error(source, msg string, data any) error {
	return rc.Emit(LevelError, source, msg, data)
}
func (rc *RunContext) Success(source, msg string, data any) error {
	return rc.Emit(LevelSuccess, source, msg, data)
}

// Log writes one line of chatty output; lines are coalesced into few rows.
func (rc *RunContext) Log(source, line string) error { return rc.emitter.Log(source, line) }

// Artifact stores a link, diff or file. A value whose JSON-escaped size is
// over the row cap (Config.ArtifactMaxBytes, at most MaxArtifactRowBytes, so
// Realtime delivers the row whole) goes to Supabase Storage with a link
// artifact when the store can (WithLargeArtifacts), else is cut with a
// visible marker; a warn event says which.
func (rc *RunContext) Artifact(ctx context.Context, kind, title, value string) error {
	switch kind {
	case ArtifactLink, ArtifactDiff, ArtifactFile:
	default:
		return fmt.Errorf("artifact %q: kind must be link, diff or file, not %q", title, kind)
	}
	a, err := rc.fitArtifact(ctx, Artifact{RunID: rc.Run.ID, Kind: kind, Title: rc.redact.String(title), Value: rc.redact.String(value)})
	if err != nil {
		return err
	}
	if err := rc.store.PutArtifact(ctx, rc.Lease(), a); err != nil {
		return fmt.Errorf("store artifact %q: %w", title, err)
	}
	return nil
}

// Lease is the run attempt's lease, which fences every write for the run
// (for example a runbook's spec_docs row).
func (rc *RunContext) Lease() Lease {
	return Lease{RunID: rc.Run.ID, Worker: rc.worker, Attempt: rc.Run.Attempt}
}

// SetOutput records a value in runs.output (written when the run finishes).
func (rc *RunContext) SetOutput(key string, v any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.output == nil {
		rc.output = map[string]any{}
	}
	rc.output[key] = v
}

func (rc *RunContext) outputJSON() json.RawMessage {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.output) == 0 {
		return nil
	}
	b, err := json.Marshal(rc.output)
	if err != nil {
		return nil
	}
	return rc.redact.JSON(b)
}

// StepSpec describes a step mirrored in run_steps.
type StepSpec struct {
	ID, Title, Kind, Tool, Action string
	Args                          json.RawMessage
}

// Step runs fn as a step mirrored in run_steps (running, then succeeded,
// failed or canceled). Phases are steps 0-4; runbook steps follow.
func (rc *RunContext) Step(ctx context.Context, spec StepSpec, fn func(ctx context.Context) error) error {
	rc.mu.Lock()
	idx := 5 + rc.stepIdx
	rc.stepIdx++
	rc.mu.Unlock()
	if spec.Kind == "" {
		spec.Kind = "system"
	}
	st := Step{RunID: rc.Run.ID, Idx: idx, StepID: spec.ID, Title: spec.Title, Kind: spec.Kind,
		Tool: optional(spec.Tool), Action: optional(spec.Action), Args: rc.redact.JSON(spec.Args)}
	return rc.trackStep(ctx, st, fn)
}

func (rc *RunContext) trackStep(ctx context.Context, st Step, fn func(ctx context.Context) error) error {
	st.gen, st.Attempt = rc.emitter.gen, rc.emitter.attempt
	now := time.Now()
	st.Status, st.StartedAt = "running", &now
	if err := rc.emitter.writer.enqueue(ctx, item{step: ptr(st)}); err != nil {
		return err
	}
	err := fn(ctx)
	end := time.Now()
	st.FinishedAt = &end
	switch {
	case err == nil:
		st.Status = "succeeded"
	case ctx.Err() != nil:
		st.Status = "canceled"
		st.Error = optional(rc.redact.String(context.Cause(ctx).Error()))
	default:
		st.Status = "failed"
		st.Error = optional(rc.redact.String(err.Error()))
	}
	// The final step row is queued even when ctx is done, so no step is left
	// "running" after its run ended.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	defer cancel()
	if qerr := rc.emitter.writer.enqueue(qctx, item{step: ptr(st)}); qerr != nil && err == nil {
		err = qerr
	}
	return err
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ptr[T any](v T) *T { return &v }
