package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/opscontrolroom/opsd/executor"
)

// The operations (schedules, retry, retention, audit) are SQL functions of
// migration 20261206000002; both stores call them with the same named
// arguments built here and decode the same JSON answers.

// defaultPruneBatch bounds the rows one prune call deletes per table.
const defaultPruneBatch = 500

// PruneArgs is the arguments of opsd_prune.
func PruneArgs(req executor.PruneRequest) map[string]any {
	batch := req.Batch
	if batch <= 0 {
		batch = defaultPruneBatch
	}
	return map[string]any{
		"p_worker":     req.Worker,
		"p_run_events": executor.AgeSeconds(req.Retention.RunEvents),
		"p_run_steps":  executor.AgeSeconds(req.Retention.RunSteps),
		"p_artifacts":  executor.AgeSeconds(req.Retention.Artifacts),
		"p_runs":       executor.AgeSeconds(req.Retention.Runs),
		"p_audit_log":  executor.AgeSeconds(req.Retention.AuditLog),
		"p_batch":      batch,
		"p_dry_run":    req.DryRun,
	}
}

// AuditArgs is the arguments of opsd_audit.
func AuditArgs(q executor.AuditQuery) map[string]any {
	limit := q.Limit
	if limit <= 0 {
		limit = 10000
	}
	return map[string]any{
		"p_since":  nilIfZeroTime(q.Since),
		"p_until":  nilIfZeroTime(q.Until),
		"p_run_id": NullString(q.RunID),
		"p_limit":  limit,
	}
}

func nilIfZeroTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ScheduleJSON is the object opsd_schedule_save reads.
func ScheduleJSON(s executor.Schedule) ([]byte, error) {
	s.ID, s.NextRunAt, s.LastRunAt, s.CreatedBy, s.CreatedAt = "", nil, nil, nil, nil
	return json.Marshal(s)
}

// DecodeOps decodes a function's JSON answer; null decodes to nothing and
// reports false.
func DecodeOps(op string, raw []byte, out any) (bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return false, &executor.StoreError{Kind: executor.ErrInvalidInput, Op: op,
			Message: fmt.Sprintf("cannot decode the answer: %v", err)}
	}
	return true, nil
}

// ScheduleNotFound is the error for a schedule name that does not exist.
func ScheduleNotFound(op, name string) error {
	return &executor.StoreError{Kind: executor.ErrNotFound, Op: op, Message: fmt.Sprintf("no schedule named %q", name)}
}
