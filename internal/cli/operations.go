package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/config"
)

// withOps is withStore for the commands that need executor.Operations
// (schedules, retry, prune, audit).
func withOps(cmd *cobra.Command, l *config.Loader, fn func(ctx context.Context, e *env, s cliStore, ops executor.Operations) error) error {
	return withStore(cmd, l, func(ctx context.Context, e *env, s cliStore) error {
		ops, ok := s.(executor.Operations)
		if !ok {
			return errors.New("this store does not support schedules, retry, prune or audit")
		}
		if err := checkSchema(ctx, s); err != nil {
			return err
		}
		return fn(ctx, e, s, ops)
	})
}

// maintenanceConfig is the daemon's schedules and retention configuration.
// The configuration was validated at load, so Ages cannot fail here.
func maintenanceConfig(e *env) executor.MaintenanceConfig {
	ages, _ := e.cfg.Retention.Ages()
	return executor.MaintenanceConfig{
		Retention: executor.Retention{RunEvents: ages.RunEvents, RunSteps: ages.RunSteps, Artifacts: ages.Artifacts, Runs: ages.Runs,
			AuditLog: ages.AuditLog},
		PruneInterval: ages.Interval,
		PruneBatch:    ages.Batch,
	}
}

// retryPolicies is the `retries:` section for the daemon. The configuration
// was validated at load, so RetryBackoff cannot fail here.
func retryPolicies(e *env) map[string]executor.RetryPolicy {
	out := map[string]executor.RetryPolicy{}
	for kind, p := range e.cfg.Retries {
		d, _ := p.RetryBackoff()
		out[kind] = executor.RetryPolicy{MaxAttempts: p.MaxAttempts, Backoff: d}
	}
	return out
}
