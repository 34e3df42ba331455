package reststore

import (
	"context"
	"encoding/json"
	"time"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/supabase/internal/wire"
)

// callJSON calls one operations function through PostgREST.
var (
	_ executor.Operations = (*Store)(nil)
	_ executor.Requeuer   = (*Store)(nil)
)

func (s *Store) callJSON(ctx context.Context, fn string, args map[string]any, policy restRetryPolicy, out any) (bool, error) {
	var raw json.RawMessage
	if _, err := s.rpc(ctx, fn, args, policy, &raw); err != nil {
		return false, err
	}
	return wire.DecodeOps(fn, raw, out)
}

// EnqueueDueSchedules calls opsd_enqueue_due_schedules; the unique tick
// index makes a resent call harmless.
func (s *Store) EnqueueDueSchedules(ctx context.Context, limit int) (executor.EnqueueResult, error) {
	var r executor.EnqueueResult
	_, err := s.callJSON(ctx, "opsd_enqueue_due_schedules", map[string]any{"p_limit": limit}, restRetrySafe, &r)
	return r, err
}

// Prune calls opsd_prune once (a batch is idempotent: resending deletes
// what is still due).
func (s *Store) Prune(ctx context.Context, req executor.PruneRequest) (executor.PruneResult, error) {
	var r executor.PruneResult
	_, err := s.callJSON(ctx, "opsd_prune", wire.PruneArgs(req), restRetrySafe, &r)
	return r, err
}

// SaveSchedule calls opsd_schedule_save.
func (s *Store) SaveSchedule(ctx context.Context, sc executor.Schedule, actor string) (*executor.Schedule, error) {
	body, err := wire.ScheduleJSON(sc)
	if err != nil {
		return nil, err
	}
	var out executor.Schedule
	if _, err := s.callJSON(ctx, "opsd_schedule_save", map[string]any{"p_schedule": json.RawMessage(body), "p_actor": actor},
		restRetryUnsent, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSchedules calls opsd_schedules.
func (s *Store) ListSchedules(ctx context.Context) ([]executor.Schedule, error) {
	var out []executor.Schedule
	_, err := s.callJSON(ctx, "opsd_schedules", nil, restRetrySafe, &out)
	return out, err
}

// SetScheduleEnabled calls opsd_schedule_set.
func (s *Store) SetScheduleEnabled(ctx context.Context, name string, enabled bool, actor string) (*executor.Schedule, error) {
	var out executor.Schedule
	ok, err := s.callJSON(ctx, "opsd_schedule_set", map[string]any{"p_name": name, "p_enabled": enabled, "p_actor": actor},
		restRetrySafe, &out)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, wire.ScheduleNotFound("opsd_schedule_set", name)
	}
	return &out, nil
}

// DeleteSchedule calls opsd_schedule_delete.
func (s *Store) DeleteSchedule(ctx context.Context, name, actor string) error {
	var ok bool
	if _, err := s.rpc(ctx, "opsd_schedule_delete", map[string]any{"p_name": name, "p_actor": actor}, restRetryUnsent, &ok); err != nil {
		return err
	}
	if !ok {
		return wire.ScheduleNotFound("opsd_schedule_delete", name)
	}
	return nil
}

// RetryRun calls retry_run. Not resent after a doubtful failure: a second
// call would queue a second retry.
func (s *Store) RetryRun(ctx context.Context, id, actor string) (string, error) {
	var newID *string
	if _, err := s.rpc(ctx, "retry_run", map[string]any{"p_run_id": id, "p_actor": actor}, restRetryUnsent, &newID); err != nil {
		return "", err
	}
	if newID == nil {
		return "", restNotFound("retry_run "+id, "run "+id)
	}
	return *newID, nil
}

// Audit calls opsd_audit.
func (s *Store) Audit(ctx context.Context, q executor.AuditQuery) ([]executor.AuditEntry, error) {
	var out []executor.AuditEntry
	_, err := s.callJSON(ctx, "opsd_audit", wire.AuditArgs(q), restRetrySafe, &out)
	return out, err
}

// QueueStats calls opsd_queue_stats.
func (s *Store) QueueStats(ctx context.Context) (executor.QueueStats, error) {
	var out executor.QueueStats
	_, err := s.callJSON(ctx, "opsd_queue_stats", nil, restRetrySafe, &out)
	return out, err
}

// RequeueRun calls opsd_requeue_run; fenced by worker and attempt, so a
// resent call cannot requeue twice.
func (s *Store) RequeueRun(ctx context.Context, lease executor.Lease, delay time.Duration, reason string) (bool, error) {
	var ok bool
	_, err := s.rpc(ctx, "opsd_requeue_run", map[string]any{"p_run_id": lease.RunID, "p_worker": lease.Worker, "p_attempt": lease.Attempt,
		"p_delay_seconds": int(delay.Round(time.Second) / time.Second), "p_reason": wire.NullText(reason)}, restRetrySafe, &ok)
	return ok, err
}
