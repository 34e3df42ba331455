package executor

import (
	"context"
	"encoding/json"
	"time"
)

// Operations is what schedules, retries, retention and the audit trail need
// from the store, beside Store. Both stores implement it by calling SQL
// functions, so the database does the work and coordinates daemons.
type Operations interface {
	// EnqueueDueSchedules enqueues one run per due schedule (at most limit
	// schedules per call); safe to call from every daemon at once.
	EnqueueDueSchedules(ctx context.Context, limit int) (EnqueueResult, error)
	// Prune does one bounded batch of retention (or, dry, counts a full pass).
	Prune(ctx context.Context, req PruneRequest) (PruneResult, error)
	// SaveSchedule creates a schedule; the database validates its cron.
	SaveSchedule(ctx context.Context, s Schedule, actor string) (*Schedule, error)
	// ListSchedules lists every schedule by name.
	ListSchedules(ctx context.Context) ([]Schedule, error)
	// SetScheduleEnabled pauses or resumes a schedule (ErrNotFound if none).
	SetScheduleEnabled(ctx context.Context, name string, enabled bool, actor string) (*Schedule, error)
	// DeleteSchedule removes a schedule (ErrNotFound if none).
	DeleteSchedule(ctx context.Context, name, actor string) error
	// RetryRun queues a new run like one that ended error or canceled and
	// returns its id (ErrNotFound if there is no such run).
	RetryRun(ctx context.Context, id, actor string) (string, error)
	// Audit lists audit entries oldest first.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	// QueueStats reads the queue gauges (oldest queued run, approvals).
	QueueStats(ctx context.Context) (QueueStats, error)
}

// QueueStats is the queue as the alert rules watch it.
type QueueStats struct {
	Queued                int64   `json:"queued"`
	OldestQueuedSeconds   float64 `json:"oldest_queued_seconds"`
	AwaitingApproval      int64   `json:"awaiting_approval"`
	OldestApprovalSeconds float64 `json:"oldest_approval_seconds"`
}

// Schedule is a row of public.run_schedules.
type Schedule struct {
	ID         string          `json:"id,omitempty"`
	Name       string          `json:"name"`
	Cron       string          `json:"cron"`
	Timezone   string          `json:"timezone,omitempty"`
	Env        string          `json:"env"`
	Kind       string          `json:"kind"`
	TemplateID *string         `json:"template_id,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Plan       json.RawMessage `json:"plan,omitempty"`
	Lane       string          `json:"lane,omitempty"`
	SessionID  *string         `json:"session_id,omitempty"`
	Enabled    *bool           `json:"enabled,omitempty"`
	Overlap    string          `json:"overlap,omitempty"` // skip (default) or queue
	NextRunAt  *time.Time      `json:"next_run_at,omitempty"`
	LastRunAt  *time.Time      `json:"last_run_at,omitempty"`
	CreatedBy  *string         `json:"created_by,omitempty"`
	CreatedAt  *time.Time      `json:"created_at,omitempty"`
}

// EnqueueResult is what one scheduler pass did.
type EnqueueResult struct {
	Enqueued int `json:"enqueued"` // runs enqueued
	Skipped  int `json:"skipped"`  // ticks skipped because the previous run was still in flight
	Failed   int `json:"failed"`   // ticks that could not be enqueued (audit_log schedule.failed says why)
}

// Retention holds the age past which finished runs' rows, and audit trail
// entries, are deleted; zero keeps everything.
type Retention struct {
	RunEvents time.Duration
	RunSteps  time.Duration
	Artifacts time.Duration
	Runs      time.Duration
	AuditLog  time.Duration // audit_log entries, whatever became of their run
}

// Enabled says whether any rule deletes anything.
func (r Retention) Enabled() bool {
	return r.RunEvents > 0 || r.RunSteps > 0 || r.Artifacts > 0 || r.Runs > 0 || r.AuditLog > 0
}

// PruneRequest is one retention batch.
type PruneRequest struct {
	Worker    string // holder of the prune lease
	Retention Retention
	Batch     int  // rows per table per call
	DryRun    bool // count a full pass, delete nothing
}

// PruneResult counts the rows deleted (or that would be) per table.
type PruneResult struct {
	RunEvents int64  `json:"run_events"`
	RunSteps  int64  `json:"run_steps"`
	Artifacts int64  `json:"artifacts"`
	Runs      int64  `json:"runs"`
	AuditLog  int64  `json:"audit_log"`
	DryRun    bool   `json:"dry_run"`
	Busy      string `json:"busy,omitempty"` // another daemon holds the prune lease
}

// Total is the number of rows over all tables.
func (p PruneResult) Total() int64 {
	return p.RunEvents + p.RunSteps + p.Artifacts + p.Runs + p.AuditLog
}

// TableCount is one table's count in a PruneResult.
type TableCount struct {
	Table string
	Rows  int64
}

// Tables lists the counts per table in the order opsd_prune deletes them,
// for logs, metrics and `opsd prune`.
func (p PruneResult) Tables() []TableCount {
	return []TableCount{{"run_events", p.RunEvents}, {"run_steps", p.RunSteps}, {"artifacts", p.Artifacts},
		{"runs", p.Runs}, {"audit_log", p.AuditLog}}
}

// Add sums two results.
func (p PruneResult) Add(o PruneResult) PruneResult {
	p.RunEvents += o.RunEvents
	p.RunSteps += o.RunSteps
	p.Artifacts += o.Artifacts
	p.Runs += o.Runs
	p.AuditLog += o.AuditLog
	return p
}

// AuditQuery filters the audit trail; zero values do not filter.
type AuditQuery struct {
	Since, Until time.Time
	RunID        string
	Limit        int
}

// AuditEntry is a row of public.audit_log: who did what, when.
type AuditEntry struct {
	ID         int64           `json:"id"`
	At         time.Time       `json:"at"`
	Action     string          `json:"action"`
	Actor      string          `json:"actor"`
	RunID      *string         `json:"run_id"`
	ScheduleID *string         `json:"schedule_id,omitempty"`
	Details    json.RawMessage `json:"details,omitempty"`
}

// AgeSeconds is d in whole seconds for the SQL functions, nil for zero.
func AgeSeconds(d time.Duration) *int64 {
	if d <= 0 {
		return nil
	}
	s := int64(d / time.Second)
	return &s
}
