package executor

import (
	"context"
	"encoding/json"
	"time"
)

// Run statuses, exactly as the frontend and the runs.status CHECK spell them.
const (
	StatusQueued   = "queued"
	StatusRunning  = "running"
	StatusSuccess  = "success"
	StatusError    = "error"
	StatusCanceled = "canceled"
)

// Phases of every run, in order.
const (
	PhaseValidate  = "validate"
	PhasePreflight = "preflight"
	PhaseApproval  = "approval" // waiting for approve_run before the action phase
	PhaseAction    = "action"
	PhaseVerify    = "verify"
	PhaseSummarize = "summarize"
)

// Event levels accepted by the run_events.level CHECK.
const (
	LevelDebug   = "debug"
	LevelInfo    = "info"
	LevelWarn    = "warn"
	LevelError   = "error"
	LevelSuccess = "success"
)

// Artifact kinds accepted by the artifacts.kind CHECK.
const (
	ArtifactLink = "link"
	ArtifactDiff = "diff"
	ArtifactFile = "file"
)

// Heartbeat states reported by the batched heartbeat, one per in-flight run.
const (
	LeaseOwned    = "owned"    // still ours, keep going
	LeaseCanceled = "canceled" // an operator canceled it: stop and finish as canceled
	LeaseLost     = "lost"     // reaped or finished elsewhere: stop, write nothing more
)

// Run is a row of public.runs as the daemon sees it.
type Run struct {
	ID             string          `json:"id"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      *time.Time      `json:"updated_at,omitempty"`
	CreatedBy      *string         `json:"created_by,omitempty"`
	Env            string          `json:"env"`
	Kind           string          `json:"kind"`
	Plan           json.RawMessage `json:"plan,omitempty"`
	Intent         string          `json:"intent"`
	TemplateID     *string         `json:"template_id,omitempty"`
	Input          json.RawMessage `json:"input,omitempty"`
	Status         string          `json:"status"`
	StartedAt      *time.Time      `json:"started_at,omitempty"`
	FinishedAt     *time.Time      `json:"finished_at,omitempty"`
	ErrorMessage   *string         `json:"error_message,omitempty"`
	SessionID      *string         `json:"session_id,omitempty"`
	Lane           string          `json:"lane"`
	Priority       int             `json:"priority"`
	ClaimedBy      *string         `json:"claimed_by,omitempty"`
	ClaimedAt      *time.Time      `json:"claimed_at,omitempty"`
	HeartbeatAt    *time.Time      `json:"heartbeat_at,omitempty"`
	CanceledAt     *time.Time      `json:"canceled_at,omitempty"`
	Attempt        int             `json:"attempt"`
	MaxAttempts    int             `json:"max_attempts"`
	Phase          *string         `json:"phase,omitempty"`
	Output         json.RawMessage `json:"output,omitempty"`
	DryRun         bool            `json:"dry_run"`
	TimeoutSeconds *int            `json:"timeout_seconds,omitempty"`
	ApprovedBy     *string         `json:"approved_by,omitempty"`
	ApprovedAt     *time.Time      `json:"approved_at,omitempty"`
	RejectedBy     *string         `json:"rejected_by,omitempty"`
	RejectedAt     *time.Time      `json:"rejected_at,omitempty"`
	LeaseExpiresAt *time.Time      `json:"lease_expires_at,omitempty"`
	AttemptsUsed   int             `json:"attempts_used,omitempty"`

	// NextSeq is the seq the first event of this attempt must use (max existing
	// seq + 1). Set by claim_run, not a column.
	NextSeq int `json:"next_seq,omitempty"`
}

// Terminal reports whether the run's status can never change again.
func (r *Run) Terminal() bool {
	return r.Status == StatusSuccess || r.Status == StatusError || r.Status == StatusCanceled
}

// Event is a row of public.run_events.
type Event struct {
	RunID   string          `json:"run_id"`
	Seq     int             `json:"seq"`
	TS      time.Time       `json:"ts"`
	Level   string          `json:"level"`
	Source  string          `json:"source"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
	Phase   string          `json:"phase,omitempty"`
	// Attempt is the writing attempt of the run (its fencing token): the
	// database stores the row only while that attempt holds the lease.
	Attempt int `json:"attempt,omitempty"`

	gen uint64 // the emitting attempt's generation (Writer.Forget); not stored
}

// Artifact is a row of public.artifacts.
type Artifact struct {
	ID        int64     `json:"id,omitempty"`
	RunID     string    `json:"run_id"`
	CreatedAt time.Time `json:"created_at,omitempty"`
	Kind      string    `json:"kind"`
	Title     string    `json:"title"`
	Value     string    `json:"value"`
}

// Step is a row of public.run_steps, keyed by (run_id, idx).
type Step struct {
	RunID      string          `json:"run_id"`
	Idx        int             `json:"idx"`
	StepID     string          `json:"step_id"`
	Title      string          `json:"title"`
	Kind       string          `json:"kind"`
	Tool       *string         `json:"tool,omitempty"`
	Action     *string         `json:"action,omitempty"`
	Args       json.RawMessage `json:"args,omitempty"`
	Status     string          `json:"status"` // queued running succeeded failed canceled
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Error      *string         `json:"error,omitempty"`
	Attempt    int             `json:"attempt,omitempty"` // the writing attempt, as for Event

	gen uint64 // the writing attempt's generation (Writer.Forget); not stored
}

// Template is a row of public.run_templates.
type Template struct {
	ID           string `json:"id"`
	Slug         string `json:"slug"`
	Title        string `json:"title"`
	Description  string `json:"description"`
	TemplateYAML string `json:"template_yaml"`
}

// Lease identifies one attempt of a run held by one worker. Every write that
// changes a run's state is fenced by it.
type Lease struct {
	RunID   string `json:"run_id"`
	Worker  string `json:"worker"`
	Attempt int    `json:"attempt"`
}

// LeaseState is what the batched heartbeat says about one lease.
type LeaseState struct {
	RunID      string `json:"run_id"`
	State      string `json:"state"` // LeaseOwned, LeaseCanceled or LeaseLost
	Approved   bool   `json:"approved"`
	ApprovedBy string `json:"approved_by,omitempty"` // who approved, once Approved
	Message    string `json:"message,omitempty"`     // why a canceled run was canceled (a rejection's reason), if said
}

// Finish is the fenced terminal write of a run.
type Finish struct {
	Lease
	Status       string          // success, error or canceled
	ErrorMessage string          // empty for success
	Output       json.RawMessage // optional
	// Events are stored in the same transaction as the status (the run's
	// final event), so both land or neither does.
	Events []Event
}

// Rows is one batch of a writer's rows, of any number of runs. Every row
// carries its run's attempt: the database stores it only while that attempt
// holds the run's lease.
type Rows struct {
	Events []Event
	Steps  []Step
	// Phases are phase changes written with the rows (the pre-action and
	// post-action phases; the change into action is synchronous, SetPhase).
	// A run's phase only moves forward: a change to an earlier phase than
	// the stored one is ignored.
	Phases []PhaseChange
	// Finishes are terminal writes made after the batch's rows, in the
	// same transaction: each one's Events (its final event) land with its
	// status or not at all. A finish whose lease is refused was not made.
	Finishes []Finish
}

// PhaseChange records that one attempt of a run entered a phase.
type PhaseChange struct {
	RunID   string `json:"run_id"`
	Attempt int    `json:"attempt"`
	Phase   string `json:"phase"`

	gen uint64 // the writing attempt's generation (Writer.Forget); not stored
}

// ReapResult is one run the reaper acted on.
type ReapResult struct {
	RunID  string `json:"run_id"`
	Action string `json:"action"` // requeued, errored, finalized
	Phase  string `json:"phase"`
	Worker string `json:"worker"`
}

// ClaimRequest asks for up to Limit runs of one lane. Token makes the claim
// idempotent: replaying a request with the same Token (after its response was
// lost) returns the runs that request claimed instead of claiming more.
type ClaimRequest struct {
	Worker string
	Lane   string
	Limit  int
	Token  string // a fresh UUID per logical claim; the same one again to replay it
	// LeaseFor is how long each claimed run's lease lasts unless a
	// heartbeat renews it (the daemon's stale-after). Default 30s.
	LeaseFor time.Duration
}

// NewRun is what a submitter (the operator CLI, like the frontend) inserts.
type NewRun struct {
	Env            string          `json:"env"`
	Kind           string          `json:"kind"`
	Plan           json.RawMessage `json:"plan,omitempty"`
	Intent         string          `json:"intent"`
	TemplateID     *string         `json:"template_id,omitempty"`
	Input          json.RawMessage `json:"input,omitempty"`
	SessionID      *string         `json:"session_id,omitempty"`
	Lane           string          `json:"lane,omitempty"`
	Priority       *int            `json:"priority,omitempty"`
	DryRun         bool            `json:"dry_run,omitempty"`
	TimeoutSeconds *int            `json:"timeout_seconds,omitempty"`
}

// LaneCount is queued and running counts of one lane, for `opsd status`.
type LaneCount struct {
	Lane    string `json:"lane"`
	Queued  int    `json:"queued"`
	Running int    `json:"running"`
}

// RunFilter selects runs for listings.
type RunFilter struct {
	Statuses []string
	Limit    int
}

// Store is what the daemon needs from Supabase: claim runs, hold their
// leases, write their phases and rows, finish, release and reap them, read
// templates and write spec docs. It is implemented by pgstore.Store (direct
// PostgreSQL) and reststore.Store (PostgREST with the service-role key), which
// also implement OperatorStore. Errors are the typed errors of this package
// (ErrNotFound, ErrConflict, ...), wrapped with what was being done.
type Store interface {
	// ClaimRuns claims up to req.Limit runs of req.Lane through claim_run.
	ClaimRuns(ctx context.Context, req ClaimRequest) ([]*Run, error)
	// Heartbeat renews every lease of worker in one call (each then lasts
	// leaseFor) and reports each one's state.
	Heartbeat(ctx context.Context, worker string, leases []Lease, leaseFor time.Duration) ([]LeaseState, error)
	// SetPhase records the current phase of a leased run; false when the lease is gone.
	SetPhase(ctx context.Context, lease Lease, phase string) (bool, error)
	// FinishRun is the fenced terminal write, with f.Events in the same
	// transaction; false when the lease is gone. The daemon finishes runs
	// through AppendRows (Rows.Finishes) and calls this only for a finish
	// whose batch the database rejected.
	FinishRun(ctx context.Context, f Finish) (bool, error)
	// ReleaseRun puts a leased run back to queued (graceful shutdown before action).
	ReleaseRun(ctx context.Context, lease Lease, reason string) (bool, error)
	// ReapStale requeues, fails or finalizes runs whose lease expired (the
	// deadline their owner set; no caller chooses it).
	ReapStale(ctx context.Context) ([]ReapResult, error)

	// AppendRows stores a batch of events, step rows and phase changes in
	// one call, fenced by (worker, each row's attempt), and returns the leases whose rows
	// were refused because the attempt no longer holds its run. Events whose
	// (run_id, seq) exist are ignored and steps are upserted by (run_id,
	// idx), so a retried batch is idempotent.
	AppendRows(ctx context.Context, worker string, rows Rows) (refused []Lease, err error)
	// PutArtifact stores one artifact of a leased run; an ErrLeaseLost
	// error when the lease is gone.
	PutArtifact(ctx context.Context, lease Lease, a Artifact) error

	// GetTemplate loads a template by id or slug.
	GetTemplate(ctx context.Context, idOrSlug string) (*Template, error)
	// UpsertSpecDoc writes a spec_docs row by slug for a leased run; an
	// ErrLeaseLost error when the lease is gone.
	UpsertSpecDoc(ctx context.Context, lease Lease, slug, title, content string) error

	// SchemaVersion is the newest applied migration version.
	SchemaVersion(ctx context.Context) (string, error)
	// Ping checks connectivity (the ping() RPC).
	Ping(ctx context.Context) error
	// Wakeups returns a channel that receives a lane name (or "" for any lane)
	// when new work may be claimable, or nil when the backend cannot push.
	// It lives until ctx is done.
	Wakeups(ctx context.Context) <-chan string
	// Close releases connections.
	Close()
}

// OperatorStore is what the operator commands ask of the store about runs,
// as the UI does: submit, read, list and count them, cancel, approve or reject
// them. The daemon never calls it. Both stores implement it beside Store.
type OperatorStore interface {
	// SubmitRun queues a run, as the UI's submit does.
	SubmitRun(ctx context.Context, r NewRun) (*Run, error)
	// GetRun loads a run by id; ErrNotFound when there is none.
	GetRun(ctx context.Context, id string) (*Run, error)
	// ListEvents lists a run's events with seq > afterSeq in seq order;
	// limit <= 0 means all.
	ListEvents(ctx context.Context, runID string, afterSeq int, limit int) ([]Event, error)
	// ListArtifacts lists a run's artifacts.
	ListArtifacts(ctx context.Context, runID string) ([]Artifact, error)
	// ListRuns lists runs newest first, filtered by f.
	ListRuns(ctx context.Context, f RunFilter) ([]*Run, error)
	// LaneCounts counts queued and running runs per lane.
	LaneCounts(ctx context.Context) ([]LaneCount, error)
	// CancelRun cancels a queued or running run; false when it was already
	// terminal or does not exist.
	CancelRun(ctx context.Context, id string) (bool, error)
	// ApproveRun approves a run as approver (an operator's name); false when
	// it was approved already.
	ApproveRun(ctx context.Context, id, approver string) (bool, error)
	// RejectRun refuses a run waiting for approval: it ends canceled with reason.
	RejectRun(ctx context.Context, id, approver, reason string) (bool, error)
}
