package pgstore

import (
	"context"
	"time"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/supabase/internal/wire"
)

// callJSON runs one operations function that answers JSON.
var (
	_ executor.Operations = (*Store)(nil)
	_ executor.Requeuer   = (*Store)(nil)
)

func (s *Store) callJSON(ctx context.Context, op, sql string, out any, args ...any) (bool, error) {
	var raw []byte
	if err := s.pool.QueryRow(ctx, sql, args...).Scan(&raw); err != nil {
		return false, pgError(ctx, op, err)
	}
	return wire.DecodeOps(op, raw, out)
}

// EnqueueDueSchedules calls opsd_enqueue_due_schedules.
func (s *Store) EnqueueDueSchedules(ctx context.Context, limit int) (executor.EnqueueResult, error) {
	var r executor.EnqueueResult
	_, err := s.callJSON(ctx, "opsd_enqueue_due_schedules", `SELECT public.opsd_enqueue_due_schedules($1)`, &r, limit)
	return r, err
}

// Prune calls opsd_prune once.
func (s *Store) Prune(ctx context.Context, req executor.PruneRequest) (executor.PruneResult, error) {
	a := wire.PruneArgs(req)
	var r executor.PruneResult
	_, err := s.callJSON(ctx, "opsd_prune",
		`SELECT public.opsd_prune(p_worker => $1, p_run_events => $2, p_run_steps => $3, p_artifacts => $4, p_runs => $5,
			p_audit_log => $6, p_batch => $7, p_dry_run => $8)`,
		&r, a["p_worker"], a["p_run_events"], a["p_run_steps"], a["p_artifacts"], a["p_runs"], a["p_audit_log"], a["p_batch"], a["p_dry_run"])
	return r, err
}

// SaveSchedule calls opsd_schedule_save.
func (s *Store) SaveSchedule(ctx context.Context, sc executor.Schedule, actor string) (*executor.Schedule, error) {
	body, err := wire.ScheduleJSON(sc)
	if err != nil {
		return nil, err
	}
	var out executor.Schedule
	if _, err := s.callJSON(ctx, "save schedule "+sc.Name, `SELECT public.opsd_schedule_save($1::jsonb, $2)`, &out, string(body), actor); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSchedules calls opsd_schedules.
func (s *Store) ListSchedules(ctx context.Context) ([]executor.Schedule, error) {
	var out []executor.Schedule
	_, err := s.callJSON(ctx, "list schedules", `SELECT public.opsd_schedules()`, &out)
	return out, err
}

// SetScheduleEnabled calls opsd_schedule_set.
func (s *Store) SetScheduleEnabled(ctx context.Context, name string, enabled bool, actor string) (*executor.Schedule, error) {
	var out executor.Schedule
	op := "set schedule " + name
	ok, err := s.callJSON(ctx, op, `SELECT public.opsd_schedule_set($1, $2, $3)`, &out, name, enabled, actor)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, wire.ScheduleNotFound(op, name)
	}
	return &out, nil
}

// DeleteSchedule calls opsd_schedule_delete.
func (s *Store) DeleteSchedule(ctx context.Context, name, actor string) error {
	op := "delete schedule " + name
	ok, err := s.queryBool(ctx, op, `SELECT public.opsd_schedule_delete($1, $2)`, name, actor)
	if err == nil && !ok {
		err = wire.ScheduleNotFound(op, name)
	}
	return err
}

// RetryRun calls retry_run.
func (s *Store) RetryRun(ctx context.Context, id, actor string) (string, error) {
	op := "retry_run " + id
	var newID *string
	if err := s.pool.QueryRow(ctx, `SELECT public.retry_run($1, $2)::text`, id, actor).Scan(&newID); err != nil {
		return "", pgError(ctx, op, err)
	}
	if newID == nil {
		return "", &executor.StoreError{Kind: executor.ErrNotFound, Op: op, Message: "no such run"}
	}
	return *newID, nil
}

// Audit calls opsd_audit.
func (s *Store) Audit(ctx context.Context, q executor.AuditQuery) ([]executor.AuditEntry, error) {
	a := wire.AuditArgs(q)
	var out []executor.AuditEntry
	_, err := s.callJSON(ctx, "opsd_audit", `SELECT public.opsd_audit($1, $2, $3, $4)`, &out,
		a["p_since"], a["p_until"], a["p_run_id"], a["p_limit"])
	return out, err
}

// QueueStats calls opsd_queue_stats.
func (s *Store) QueueStats(ctx context.Context) (executor.QueueStats, error) {
	var out executor.QueueStats
	_, err := s.callJSON(ctx, "opsd_queue_stats", `SELECT public.opsd_queue_stats()`, &out)
	return out, err
}

// RequeueRun calls opsd_requeue_run (fenced by worker and attempt).
func (s *Store) RequeueRun(ctx context.Context, lease executor.Lease, delay time.Duration, reason string) (bool, error) {
	return s.queryBool(ctx, "opsd_requeue_run "+lease.RunID, `SELECT public.opsd_requeue_run($1, $2, $3, $4, $5)`,
		lease.RunID, lease.Worker, lease.Attempt, int(delay.Round(time.Second)/time.Second), wire.NullText(reason))
}
