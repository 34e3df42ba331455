package executor

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// RetryPolicy is a kind's automatic retries: an attempt that fails before
// its action phase is queued again after Backoff (doubled per attempt, at
// most an hour), up to MaxAttempts attempts in all. An attempt that fails
// in or after its action phase is never retried: its side effects may have
// happened.
type RetryPolicy struct {
	MaxAttempts int
	Backoff     time.Duration // default 30s
}

// RetryPolicyer is a runbook that brings its own retry policy (a
// template's `retry:` block); when it has one, it takes the place of the
// kind's configured policy.
type RetryPolicyer interface {
	RetryPolicy() (RetryPolicy, bool)
}

// Requeuer gives a failed attempt back to the queue, claimable again after
// delay; fenced by the lease like FinishRun. A store without it gets no
// automatic retries.
type Requeuer interface {
	RequeueRun(ctx context.Context, lease Lease, delay time.Duration, reason string) (bool, error)
}

const maxRetryBackoff = time.Hour

// retryDelay is the backoff before the attempt after attempt.
func (p RetryPolicy) retryDelay(attempt int) time.Duration {
	d := p.Backoff
	if d <= 0 {
		d = 30 * time.Second
	}
	for i := 1; i < attempt && d < maxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, maxRetryBackoff)
}

// maxAttempts is the larger of the run's max_attempts and its policy: the
// runbook's own (a template's `retry:`), else its kind's.
func (x *execution) maxAttempts() (int, RetryPolicy) {
	p := x.d.cfg.Retries[x.run.Kind]
	if rp, ok := x.rb.(RetryPolicyer); ok {
		if own, ok := rp.RetryPolicy(); ok {
			p = own
		}
	}
	return max(x.run.MaxAttempts, p.MaxAttempts, 1), p
}

// requeueOnFailure settles a failed attempt whose kind may be retried: before
// the action phase it is queued again with backoff (true: nothing more to
// write); otherwise an event says why it is not retried and the caller
// finishes it as usual (false).
func (x *execution) requeueOnFailure(ctx context.Context, out outcome, phase string, log *zap.Logger) bool {
	if out.status != StatusError {
		return false
	}
	maxAttempts, policy := x.maxAttempts()
	rq, ok := x.d.store.(Requeuer)
	if maxAttempts <= 1 || !ok {
		return false
	}
	// attempts_used counts against max_attempts (a release gives one back);
	// attempt is the fencing token and only grows.
	used := x.run.AttemptsUsed
	if used <= 0 {
		used = x.run.Attempt
	}
	data := map[string]any{"attempt": used, "max_attempts": maxAttempts, "phase": phase, "retry": false}
	switch {
	case phase != PhaseValidate && phase != PhasePreflight:
		_ = x.rc.Warn("System", fmt.Sprintf("not retried: attempt %d failed in phase %s; only attempts that fail before the action phase are retried, so an action's side effects are never repeated",
			used, phase), data)
		return false
	case used >= maxAttempts:
		_ = x.rc.Warn("System", fmt.Sprintf("not retried: attempt %d of %d was the last", used, maxAttempts), data)
		return false
	}
	delay := policy.retryDelay(used)
	data["retry"], data["retry_in_seconds"] = true, delay.Seconds()
	_ = x.rc.Warn("System", fmt.Sprintf("attempt %d of %d failed in phase %s before any action: %s; retrying in %s",
		used, maxAttempts, phase, out.message, delay), data)
	if err := x.emitter.Close(); err != nil {
		log.Warn("flush chatty output", zap.Error(err))
	}
	if err := x.d.writer.Sync(ctx); err != nil {
		log.Error("events not stored before requeueing the run", zap.Error(err))
	}
	reason := x.rc.redact.String(out.message)
	requeued, err := x.d.retryStore(ctx, func(ctx context.Context) (bool, error) {
		return rq.RequeueRun(ctx, x.lease, delay, reason)
	})
	if err == nil && requeued {
		log.Info("run requeued for a retry", zap.String("phase", phase), zap.Duration("delay", delay), zap.Int("attempt", used))
		x.d.metrics.RunsFinished.WithLabelValues("retried", x.run.Kind).Inc()
		return true
	}
	// Not requeued: finish it as failed, as if no retry were configured,
	// with its final event in the same transaction.
	f := Finish{Lease: x.lease, Status: StatusError, ErrorMessage: reason, Output: x.rc.outputJSON()}
	if final, ferr := x.emitter.Final(LevelError, "System", out.message, map[string]any{"phase": phase}); ferr == nil {
		f.Events = []Event{final}
	}
	if _, ferr := x.d.retryStore(ctx, func(ctx context.Context) (bool, error) { return x.d.store.FinishRun(ctx, f) }); ferr != nil {
		log.Error("finish run after a failed requeue; the reaper will settle it", zap.Error(ferr))
	}
	log.Warn("requeue refused or failed; finished as error", zap.Error(err))
	x.d.metrics.RunsFinished.WithLabelValues(StatusError, x.run.Kind).Inc()
	x.d.notify(x.run, StatusError, reason)
	return true
}

// attemptLimit is the number of attempts the run may use in all.
func (x *execution) attemptLimit() int {
	n, _ := x.maxAttempts()
	return n
}
