package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Causes of a run context's end, told apart with context.Cause.
var (
	errCanceledByOperator = errors.New("canceled by operator")
	errLeaseLost          = errors.New("lease lost: the run was reaped or finished elsewhere")
	errShutdown           = errors.New("daemon shutting down")
	errRunTimeout         = errors.New("run timed out")
)

// phaseTimeoutError is the cause of a phase context that ran out of time.
type phaseTimeoutError struct {
	phase string
	after time.Duration
}

func (e *phaseTimeoutError) Error() string {
	return fmt.Sprintf("timed out in phase %s after %s", e.phase, e.after)
}

var phases = []struct {
	name  string
	title string
	call  func(Runbook, context.Context, *RunContext) error
}{
	{PhaseValidate, "Validate", Runbook.Validate},
	{PhasePreflight, "Preflight", Runbook.Preflight},
	{PhaseAction, "Action", Runbook.Action},
	{PhaseVerify, "Verify", Runbook.Verify},
	{PhaseSummarize, "Summarize", Runbook.Summarize},
}

// execution is one attempt of one run on this daemon.
type execution struct {
	d       *Daemon
	run     *Run
	lease   Lease
	ctx     context.Context
	cancel  context.CancelCauseFunc
	rc      *RunContext
	emitter *Emitter
	started time.Time

	rb      Runbook  // the run's runbook, once resolved
	rbErr   error    // why it could not be resolved
	targets []Target // what the runbook resolved to, known after validate

	mu         sync.Mutex
	phase      string
	approvedBy string // who approved the run, once approved is closed
	cancelMsg  string // why the run was canceled, when the canceler said (a rejection)
	approved   chan struct{}
	apOnce     sync.Once
}

// outcome is how an attempt ends.
type outcome struct {
	status  string // success, error, canceled; "" for released or lost
	message string // error_message
	release bool   // give the run back to the queue
	lost    bool   // write nothing more
}

func (x *execution) setPhase(p string) {
	x.mu.Lock()
	x.phase = p
	x.mu.Unlock()
	x.emitter.SetPhase(p)
}

func (x *execution) currentPhase() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.phase
}

func (x *execution) approve(by string) {
	x.apOnce.Do(func() {
		x.mu.Lock()
		x.approvedBy = by
		x.mu.Unlock()
		close(x.approved)
	})
}

func (x *execution) setCancelMessage(msg string) {
	x.mu.Lock()
	x.cancelMsg = msg
	x.mu.Unlock()
}

// execute runs every phase, then finishes (or releases) the run.
func (x *execution) execute() {
	d := x.d
	log := d.log.With(zap.String("run_id", x.run.ID), zap.String("lane", x.run.Lane), zap.String("kind", x.run.Kind))
	x.setPhase(PhaseValidate)
	// Resolved first so the claim event counts the runbook's own retries.
	x.rb, x.rbErr = d.resolver.Resolve(x.ctx, x.run)
	_ = x.rc.Info("System", fmt.Sprintf("claimed by %s (attempt %d of %d)", d.cfg.WorkerID, x.run.Attempt, x.attemptLimit()),
		map[string]any{"worker": d.cfg.WorkerID, "attempt": x.run.Attempt, "env": x.run.Env, "kind": x.run.Kind, "dry_run": x.run.DryRun})
	out := x.phases()
	x.finish(out, log)
}

func (x *execution) phases() outcome {
	rb := x.rb
	if x.rbErr != nil {
		return x.classify(PhaseValidate, x.rbErr)
	}
	for i, ph := range phases {
		if ph.name == PhaseAction {
			if out, stop := x.beforeAction(rb); stop {
				return out
			}
			if x.run.DryRun {
				if out, stop := x.dryRunAction(rb); stop {
					return out
				}
				continue
			}
		}
		if out, stop := x.enterPhase(ph.name); stop {
			return out
		}
		began := time.Now()
		timeout := x.d.cfg.PhaseTimeout
		if t, ok := rb.(PhaseTimeouter); ok && t.PhaseTimeout(ph.name) > 0 {
			timeout = t.PhaseTimeout(ph.name)
		}
		pctx, cancel := context.WithTimeoutCause(x.ctx, timeout, &phaseTimeoutError{phase: ph.name, after: timeout})
		st := Step{RunID: x.run.ID, Idx: i, StepID: ph.name, Title: ph.title, Kind: "system"}
		err := x.rc.trackStep(pctx, st, func(ctx context.Context) error {
			err := ph.call(rb, ctx, x.rc)
			if err == nil && ctx.Err() != nil {
				err = context.Cause(ctx) // a runbook that swallowed its cancellation
			}
			if err == nil && ph.name == PhaseValidate {
				err = x.checkTargets(rb)
			}
			return err
		})
		if err == nil && pctx.Err() != nil {
			err = context.Cause(pctx)
		}
		cancel()
		x.d.metrics.PhaseDuration.WithLabelValues(ph.name).Observe(time.Since(began).Seconds())
		if err != nil {
			return x.classify(ph.name, err)
		}
		_ = x.rc.Info("System", fmt.Sprintf("%s done in %s", ph.name, roundDuration(time.Since(began))), nil)
	}
	return outcome{status: StatusSuccess}
}

// batchedPhase reports whether entering phase is recorded with the run's
// batched rows (the writer's next flush) rather than by its own call. The
// reaper only asks whether a run reached its action phase, so only the
// change into action (and into approval, which the UI waits on) needs its
// own synchronous, fenced call; a phase change that lands late is harmless
// either way, since a run's stored phase only moves forward.
func batchedPhase(phase string) bool {
	return phase == PhasePreflight || phase == PhaseVerify || phase == PhaseSummarize
}

// enterPhase records the phase in runs.phase (fenced) and announces it.
func (x *execution) enterPhase(phase string) (outcome, bool) {
	if batchedPhase(phase) {
		x.mu.Lock()
		x.phase = phase
		x.mu.Unlock()
		if err := x.emitter.RecordPhase(phase); err != nil {
			return x.classify(phase, err), true
		}
		_ = x.rc.Info("System", phase+" started", nil)
		return outcome{}, false
	}
	x.setPhase(phase)
	// claim_run already recorded validate; the change into approval or
	// action is written before the phase starts, so the reaper never
	// mistakes an action for a preflight.
	if phase != PhaseValidate || x.run.Phase == nil || *x.run.Phase != PhaseValidate {
		ok, err := x.d.retryStore(x.ctx, func(ctx context.Context) (bool, error) {
			return x.d.store.SetPhase(ctx, x.lease, phase)
		})
		if err != nil {
			if Retryable(err) {
				// The store stayed unreachable: whether we still hold the
				// lease is unknown, so write nothing and let the reaper
				// settle the run rather than blame the runbook.
				x.d.writer.Forget(x.emitter.gen)
				return outcome{lost: true}, true
			}
			return x.classify(phase, err), true
		}
		if !ok {
			return outcome{lost: true}, true
		}
	}
	_ = x.rc.Info("System", phase+" started", nil)
	return outcome{}, false
}

// checkTargets asks a Targeter runbook what its action touches, reports
// it, and refuses the run when the policy does: still in validate, before
// any integration is touched.
func (x *execution) checkTargets(rb Runbook) error {
	t, ok := rb.(Targeter)
	if !ok {
		return nil
	}
	x.targets = t.Targets()
	if len(x.targets) > 0 {
		names := make([]string, len(x.targets))
		for i, tg := range x.targets {
			names[i] = tg.String()
			if tg.Write {
				names[i] += " [write]"
			}
		}
		_ = x.rc.Info("System", "targets: "+strings.Join(names, ", "), map[string]any{"targets": x.targets})
	}
	return x.d.cfg.Policy.CheckTargets(x.run, x.targets)
}

// beforeAction holds a run that needs approval until it is approved,
// canceled, or the approval times out.
func (x *execution) beforeAction(rb Runbook) (outcome, bool) {
	// A runbook may learn a target in preflight (a repository from a Vercel
	// project's Git link): ask again, so the policy sees every target.
	if t, ok := rb.(Targeter); ok {
		x.targets = t.Targets()
		if err := x.d.cfg.Policy.CheckTargets(x.run, x.targets); err != nil {
			return x.classify(PhasePreflight, err), true
		}
	}
	need, reason := x.d.cfg.Policy.NeedsApproval(x.run, x.targets)
	if !need || x.run.ApprovedAt != nil {
		return outcome{}, false
	}
	if out, stop := x.enterPhase(PhaseApproval); stop {
		return out, true
	}
	_ = x.rc.Warn("System", fmt.Sprintf("waiting for approval before the action phase: %s. Approve in the UI (approve_run) or run `opsd approve %s`; it times out after %s.",
		reason, x.run.ID, x.d.cfg.ApprovalTimeout), map[string]any{"reason": reason})
	x.d.notify(x.run, "waiting_for_approval", reason)
	timer := time.NewTimer(x.d.cfg.ApprovalTimeout)
	defer timer.Stop()
	select {
	case <-x.approved:
		x.mu.Lock()
		by := x.approvedBy
		x.mu.Unlock()
		_ = x.rc.Info("System", fmt.Sprintf("approved by %s; continuing to the action phase", by),
			map[string]any{"action": "approved", "approved_by": by})
		return outcome{}, false
	case <-x.ctx.Done():
		return x.classify(PhaseApproval, context.Cause(x.ctx)), true
	case <-timer.C:
		return outcome{status: StatusError, message: fmt.Sprintf("approval timed out after %s", x.d.cfg.ApprovalTimeout)}, true
	}
}

// dryRunAction skips the action phase and says what it would have done.
func (x *execution) dryRunAction(rb Runbook) (outcome, bool) {
	if out, stop := x.enterPhase(PhaseAction); stop {
		return out, true
	}
	what := "the action phase"
	if dr, ok := rb.(DryRunner); ok {
		s, err := dr.DescribeAction(x.ctx, x.rc)
		if err != nil {
			return x.classify(PhaseAction, err), true
		}
		what = s
	}
	_ = x.rc.Warn("System", "dry run: action skipped; it would have done: "+what, map[string]any{"dry_run": true})
	x.rc.SetOutput("dry_run", true)
	return outcome{}, false
}

// classify turns a phase's error into the run's outcome, looking first at
// why the run's context ended (cancel, lost lease, shutdown, run timeout).
func (x *execution) classify(phase string, err error) outcome {
	if x.ctx.Err() != nil {
		switch cause := context.Cause(x.ctx); {
		case errors.Is(cause, errCanceledByOperator):
			return outcome{status: StatusCanceled, message: "canceled by operator during " + phase}
		case errors.Is(cause, errLeaseLost):
			return outcome{lost: true}
		case errors.Is(cause, errShutdown):
			if phase == PhaseValidate || phase == PhasePreflight || phase == PhaseApproval {
				return outcome{release: true, message: "daemon shutting down before the action phase"}
			}
			return outcome{status: StatusError, message: "interrupted by shutdown during " + phase}
		case errors.Is(cause, errRunTimeout):
			return outcome{status: StatusError, message: fmt.Sprintf("timed out in phase %s after %s",
				phase, roundDuration(time.Since(x.started)))}
		}
	}
	var pt *phaseTimeoutError
	if errors.As(err, &pt) {
		return outcome{status: StatusError, message: pt.Error()}
	}
	return outcome{status: StatusError, message: fmt.Sprintf("%s failed: %s", phase, x.rc.redact.String(err.Error()))}
}

// finish writes the final event, waits for the run's rows to be stored, and
// makes the fenced terminal write (or releases the run).
func (x *execution) finish(out outcome, log *zap.Logger) {
	d := x.d
	// Final writes must happen even though the run's context may be done.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.ctx), finalWriteTimeout)
	defer cancel()
	if out.lost {
		log.Warn("lease lost; stopped without writing a status")
		_ = x.emitter.Close()
		d.metrics.RunsFinished.WithLabelValues("lost", x.run.Kind).Inc()
		return
	}
	phase := x.currentPhase()
	elapsed := roundDuration(time.Since(x.started))
	x.emitter.setContext(ctx) // back-pressure waits of the final events use the final-write budget
	if x.requeueOnFailure(ctx, out, phase, log) {
		return
	}
	if out.release {
		_ = x.rc.Warn("System", "released back to the queue: "+out.message, nil)
	}
	if err := x.emitter.Close(); err != nil {
		log.Warn("flush chatty output", zap.Error(err))
	}
	if out.release {
		if err := d.writer.Sync(ctx); err != nil {
			log.Error("events not stored before releasing the run", zap.Error(err))
		}
		if _, err := d.retryStore(ctx, func(ctx context.Context) (bool, error) {
			return d.store.ReleaseRun(ctx, x.lease, out.message)
		}); err != nil {
			log.Error("release run; the reaper will requeue it", zap.Error(err))
		}
		d.metrics.RunsFinished.WithLabelValues("released", x.run.Kind).Inc()
		return
	}
	// The final event goes with the fenced finish, in one transaction: the
	// writer's next flush, after every row of the run queued before it and
	// together with the rows and finishes of other runs (group commit).
	var final Event
	var err error
	switch out.status {
	case StatusSuccess:
		final, err = x.emitter.Final(LevelSuccess, "System", fmt.Sprintf("run succeeded in %s", elapsed), nil)
	case StatusCanceled:
		msg := fmt.Sprintf("run canceled in phase %s after %s", phase, elapsed)
		x.mu.Lock()
		if x.cancelMsg != "" {
			msg += ": " + x.cancelMsg
		}
		x.mu.Unlock()
		final, err = x.emitter.Final(LevelWarn, "System", msg, nil)
	default:
		final, err = x.emitter.Final(LevelError, "System", out.message, map[string]any{"phase": phase})
	}
	f := Finish{Lease: x.lease, Status: out.status, ErrorMessage: x.rc.redact.String(out.message), Output: x.rc.outputJSON()}
	if err == nil {
		f.Events = []Event{final}
	}
	ok, err := d.writer.Finish(ctx, f, x.emitter.gen)
	switch {
	case err != nil:
		log.Error("finish run; the reaper will settle it", zap.String("status", out.status), zap.Error(err))
	case !ok:
		log.Warn("finish refused: the lease was lost meanwhile", zap.String("status", out.status))
	default:
		log.Info("run finished", zap.String("status", out.status), zap.String("phase", phase), zap.String("error_message", f.ErrorMessage))
	}
	d.metrics.RunsFinished.WithLabelValues(out.status, x.run.Kind).Inc()
	if ok {
		// Only a finish the database recorded is announced: a refused or
		// failed one is the reaper's (or the next attempt's) to settle.
		d.notify(x.run, out.status, f.ErrorMessage)
	}
}

const finalWriteTimeout = 30 * time.Second

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(time.Millisecond)
	default:
		return d.Round(10 * time.Millisecond)
	}
}
