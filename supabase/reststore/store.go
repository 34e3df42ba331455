package reststore

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/uuid"
	"github.com/opscontrolroom/opsd/supabase/internal/wire"
)

// Store is the executor.Store over Supabase's PostgREST API with the
// service-role key: for daemons that cannot reach the database directly.
// It cannot push wakeups; the daemon polls (and takes webhooks).
type Store struct {
	c *restClient
}

var (
	_ executor.Store         = (*Store)(nil)
	_ executor.OperatorStore = (*Store)(nil)
)

// New returns a store for the project at cfg.URL.
func New(cfg Config) (*Store, error) {
	c, err := newRESTClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Store{c: c}, nil
}

// rpc calls POST /rpc/<fn> with named arguments.
func (s *Store) rpc(ctx context.Context, fn string, args map[string]any, policy restRetryPolicy, out any) (bool, error) {
	if args == nil {
		args = map[string]any{}
	}
	return s.c.do(ctx, restRequest{op: fn, method: http.MethodPost, path: "rpc/" + fn, body: args, policy: policy}, out)
}

// get reads rows of a table.
func (s *Store) get(ctx context.Context, op, table string, q url.Values, out any) error {
	_, err := s.c.do(ctx, restRequest{op: op, method: http.MethodGet, path: table, query: q, policy: restRetrySafe}, out)
	return err
}

// insert posts rows to a table with Prefer: return=minimal plus extra preferences.
func (s *Store) insert(ctx context.Context, op, table string, q url.Values, rows any, prefer string, policy restRetryPolicy) error {
	p := "return=minimal"
	if prefer != "" {
		p += "," + prefer
	}
	_, err := s.c.do(ctx, restRequest{op: op, method: http.MethodPost, path: table, query: q, body: rows, prefer: p, policy: policy}, nil)
	return err
}

func restNotFound(op, what string) error {
	return &executor.StoreError{Kind: executor.ErrNotFound, Op: op, Message: what + " not found"}
}

// ClaimRuns claims through claim_run. A claim without a token gets one, so
// that a retry after a lost response returns the runs the first attempt
// claimed instead of claiming more.
func (s *Store) ClaimRuns(ctx context.Context, req executor.ClaimRequest) ([]*executor.Run, error) {
	if req.Token == "" {
		req.Token = uuid.New()
	}
	if req.Limit < 1 {
		req.Limit = 1
	}
	var runs []*executor.Run
	_, err := s.rpc(ctx, "claim_run", map[string]any{
		"p_worker": req.Worker, "p_lane": req.Lane, "p_limit": req.Limit, "p_claim_token": req.Token,
		"p_lease_seconds": wire.LeaseSeconds(req.LeaseFor),
	}, restRetrySafe, &runs)
	if err != nil {
		return nil, fmt.Errorf("claim lane %s: %w", req.Lane, err)
	}
	if err := restNormalizeRuns("claim_run", runs); err != nil {
		return nil, fmt.Errorf("claim lane %s: %w", req.Lane, err)
	}
	return runs, nil
}

// Heartbeat renews every lease of worker through heartbeat_runs.
func (s *Store) Heartbeat(ctx context.Context, worker string, leases []executor.Lease, leaseFor time.Duration) ([]executor.LeaseState, error) {
	if len(leases) == 0 {
		return nil, nil
	}
	ids := make([]string, len(leases))
	attempts := make([]int, len(leases))
	for i, l := range leases {
		ids[i], attempts[i] = l.RunID, l.Attempt
	}
	var states []executor.LeaseState
	if _, err := s.rpc(ctx, "heartbeat_runs", map[string]any{
		"p_worker": worker, "p_run_ids": ids, "p_attempts": attempts, "p_lease_seconds": wire.LeaseSeconds(leaseFor),
	}, restRetrySafe, &states); err != nil {
		return nil, fmt.Errorf("heartbeat %d runs: %w", len(leases), err)
	}
	return states, nil
}

// SetPhase records the phase of a leased run (set_run_phase, fenced).
func (s *Store) SetPhase(ctx context.Context, lease executor.Lease, phase string) (bool, error) {
	var ok bool
	if _, err := s.rpc(ctx, "set_run_phase", map[string]any{
		"p_run_id": lease.RunID, "p_worker": lease.Worker, "p_attempt": lease.Attempt, "p_phase": phase,
	}, restRetrySafe, &ok); err != nil {
		return false, fmt.Errorf("set phase %s of run %s: %w", phase, lease.RunID, err)
	}
	return ok, nil
}

// FinishRun is the fenced terminal write (finish_run). finish_run answers
// false to a replay of a finish that already committed, so when an earlier
// attempt may have executed, a false answer is checked against the row.
func (s *Store) FinishRun(ctx context.Context, f executor.Finish) (bool, error) {
	args := map[string]any{
		"p_run_id": f.RunID, "p_worker": f.Worker, "p_attempt": f.Attempt, "p_status": f.Status,
		"p_error_message": wire.NullText(f.ErrorMessage), "p_output": wire.JSON(f.Output),
	}
	if len(f.Events) > 0 {
		rows, err := wire.EventRows("finish_run", f.Events)
		if err != nil {
			return false, err
		}
		args["p_events"] = rows
	}
	var ok bool
	retried, err := s.rpc(ctx, "finish_run", args, restRetrySafe, &ok)
	if err != nil {
		return false, fmt.Errorf("finish run %s as %s: %w", f.RunID, f.Status, err)
	}
	if ok || !retried {
		return ok, nil
	}
	r, err := s.GetRun(ctx, f.RunID)
	if err != nil {
		return false, fmt.Errorf("finish run %s: check a replayed finish: %w", f.RunID, err)
	}
	// Ours if this lease finished it with our status (a run canceled
	// meanwhile stays canceled) and, for errors, our message: the reaper
	// fails runs with a message of its own.
	ours := r.FinishedAt != nil && r.ClaimedBy != nil && *r.ClaimedBy == f.Worker && r.Attempt == f.Attempt &&
		(r.Status == f.Status || r.Status == executor.StatusCanceled) &&
		(f.Status == executor.StatusSuccess || r.Status == executor.StatusCanceled ||
			(r.ErrorMessage != nil && *r.ErrorMessage == wire.Text(f.ErrorMessage)))
	return ours, nil
}

// ReleaseRun puts a leased run back to the queue (release_run). A replay of
// a release that committed answers false; the caller stops either way.
func (s *Store) ReleaseRun(ctx context.Context, lease executor.Lease, reason string) (bool, error) {
	var ok bool
	if _, err := s.rpc(ctx, "release_run", map[string]any{
		"p_run_id": lease.RunID, "p_worker": lease.Worker, "p_attempt": lease.Attempt, "p_reason": wire.NullText(reason),
	}, restRetrySafe, &ok); err != nil {
		return false, fmt.Errorf("release run %s: %w", lease.RunID, err)
	}
	return ok, nil
}

// ReapStale calls reap_stale_runs. The reaper is safe to run again; the
// results of an attempt whose response was lost are lost (its System events
// are in the database).
func (s *Store) ReapStale(ctx context.Context) ([]executor.ReapResult, error) {
	var out []executor.ReapResult
	if _, err := s.rpc(ctx, "reap_stale_runs", nil, restRetrySafe, &out); err != nil {
		return nil, fmt.Errorf("reap runs whose lease expired: %w", err)
	}
	return out, nil
}

// AppendRows stores a batch through append_run_rows (idempotent, so safe to
// retry) and returns the leases whose rows were refused.
func (s *Store) AppendRows(ctx context.Context, worker string, r executor.Rows) ([]executor.Lease, error) {
	const op = "append_run_rows"
	a, err := wire.NewRowsArgs(op, r)
	if err != nil {
		return nil, err
	}
	if a.Empty() {
		return nil, nil
	}
	args := map[string]any{"p_worker": worker, "p_events": a.Events, "p_steps": a.Steps}
	if a.Phases != nil {
		args["p_phases"] = a.Phases
	}
	if a.Finishes != nil {
		args["p_finishes"] = a.Finishes
	}
	var refused []executor.Lease
	if _, err := s.rpc(ctx, op, args, restRetrySafe, &refused); err != nil {
		return nil, fmt.Errorf("append %d events, %d steps, %d phase changes and %d finishes: %w",
			len(r.Events), len(r.Steps), len(r.Phases), len(r.Finishes), err)
	}
	for i := range refused {
		refused[i].Worker = worker
	}
	return refused, nil
}

// PutArtifact stores one artifact of a leased run (put_artifact). Not
// idempotent: retried only when the request never left.
func (s *Store) PutArtifact(ctx context.Context, lease executor.Lease, a executor.Artifact) error {
	var id *int64
	if _, err := s.rpc(ctx, "put_artifact", map[string]any{
		"p_worker": lease.Worker, "p_run_id": lease.RunID, "p_attempt": lease.Attempt,
		"p_kind": a.Kind, "p_title": wire.Text(a.Title), "p_value": wire.Text(a.Value),
	}, restRetryUnsent, &id); err != nil {
		return fmt.Errorf("put %s artifact %q of run %s: %w", a.Kind, a.Title, a.RunID, err)
	}
	if id == nil {
		return wire.LeaseLost("put_artifact", lease)
	}
	return nil
}

var restUUIDPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// GetTemplate loads a template by id (when idOrSlug is a UUID) or by slug.
func (s *Store) GetTemplate(ctx context.Context, idOrSlug string) (*executor.Template, error) {
	q := url.Values{"select": {"id,slug,title,description,template_yaml"}, "limit": {"1"}}
	if restUUIDPattern.MatchString(idOrSlug) {
		q.Set("id", "eq."+idOrSlug)
	} else {
		q.Set("slug", "eq."+idOrSlug)
	}
	var ts []*executor.Template
	if err := s.get(ctx, "get_template", "run_templates", q, &ts); err != nil {
		return nil, fmt.Errorf("get template %s: %w", idOrSlug, err)
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("get template %s: %w", idOrSlug, restNotFound("get_template", "template "+idOrSlug))
	}
	if ts[0] == nil {
		return nil, fmt.Errorf("get template %s: %w", idOrSlug, restBadAnswer("get_template", "a null row came back"))
	}
	return ts[0], nil
}

// UpsertSpecDoc writes a spec_docs row by slug for a leased run (put_spec_doc).
func (s *Store) UpsertSpecDoc(ctx context.Context, lease executor.Lease, slug, title, content string) error {
	var ok bool
	if _, err := s.rpc(ctx, "put_spec_doc", map[string]any{
		"p_worker": lease.Worker, "p_run_id": lease.RunID, "p_attempt": lease.Attempt,
		"p_slug": slug, "p_title": wire.Text(title), "p_content": wire.Text(content),
	}, restRetrySafe, &ok); err != nil {
		return fmt.Errorf("upsert spec doc %s: %w", slug, err)
	}
	if !ok {
		return wire.LeaseLost("put_spec_doc", lease)
	}
	return nil
}

// SubmitRun inserts a queued run as the frontend does (POST /runs with
// Prefer: return=representation). A plain insert: retried only when the
// request never left, so a lost response is an error, never a duplicate run.
func (s *Store) SubmitRun(ctx context.Context, r executor.NewRun) (*executor.Run, error) {
	var runs []*executor.Run
	_, err := s.c.do(ctx, restRequest{op: "submit_run", method: http.MethodPost, path: "runs", body: r,
		prefer: "return=representation", policy: restRetryUnsent}, &runs)
	if err != nil {
		return nil, fmt.Errorf("submit %s run on %s: %w", r.Kind, r.Env, err)
	}
	if len(runs) != 1 {
		return nil, fmt.Errorf("submit %s run on %s: %w", r.Kind, r.Env,
			restBadAnswer("submit_run", fmt.Sprintf("%d rows came back, want 1", len(runs))))
	}
	if err := restNormalizeRuns("submit_run", runs); err != nil {
		return nil, fmt.Errorf("submit %s run on %s: %w", r.Kind, r.Env, err)
	}
	return runs[0], nil
}

// GetRun loads one run.
func (s *Store) GetRun(ctx context.Context, id string) (*executor.Run, error) {
	var runs []*executor.Run
	if err := s.get(ctx, "get_run", "runs", url.Values{"id": {"eq." + id}, "limit": {"1"}}, &runs); err != nil {
		return nil, fmt.Errorf("get run %s: %w", id, err)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("get run %s: %w", id, restNotFound("get_run", "run "+id))
	}
	if err := restNormalizeRuns("get_run", runs[:1]); err != nil {
		return nil, fmt.Errorf("get run %s: %w", id, err)
	}
	return runs[0], nil
}

// ListEvents reads events of a run after afterSeq, in seq order.
func (s *Store) ListEvents(ctx context.Context, runID string, afterSeq int, limit int) ([]executor.Event, error) {
	if limit <= 0 {
		limit = 1000
	}
	q := url.Values{
		"select": {"run_id,seq,ts,level,source,message,data,phase"},
		"run_id": {"eq." + runID}, "seq": {"gt." + strconv.Itoa(afterSeq)},
		"order": {"seq.asc"}, "limit": {strconv.Itoa(limit)},
	}
	var events []executor.Event
	if err := s.get(ctx, "list_events", "run_events", q, &events); err != nil {
		return nil, fmt.Errorf("list events of run %s after %d: %w", runID, afterSeq, err)
	}
	for i := range events {
		events[i].Data = wire.NullRaw(events[i].Data)
	}
	return events, nil
}

// ListArtifacts reads the artifacts of a run in insertion order.
func (s *Store) ListArtifacts(ctx context.Context, runID string) ([]executor.Artifact, error) {
	q := url.Values{"run_id": {"eq." + runID}, "order": {"id.asc"}}
	var out []executor.Artifact
	if err := s.get(ctx, "list_artifacts", "artifacts", q, &out); err != nil {
		return nil, fmt.Errorf("list artifacts of run %s: %w", runID, err)
	}
	return out, nil
}

// ListRuns lists runs newest first.
func (s *Store) ListRuns(ctx context.Context, f executor.RunFilter) ([]*executor.Run, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 25
	}
	q := url.Values{"order": {"created_at.desc,id.desc"}, "limit": {strconv.Itoa(limit)}}
	if len(f.Statuses) > 0 {
		quoted := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			quoted[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(st) + `"`
		}
		q.Set("status", "in.("+strings.Join(quoted, ",")+")")
	}
	var runs []*executor.Run
	if err := s.get(ctx, "list_runs", "runs", q, &runs); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	if err := restNormalizeRuns("list_runs", runs); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// LaneCounts reads queued and running counts per lane (opsd_lane_counts).
func (s *Store) LaneCounts(ctx context.Context) ([]executor.LaneCount, error) {
	var out []executor.LaneCount
	if _, err := s.rpc(ctx, "opsd_lane_counts", nil, restRetrySafe, &out); err != nil {
		return nil, fmt.Errorf("lane counts: %w", err)
	}
	return out, nil
}

// CancelRun cancels a queued or running run (cancel_run). When an earlier
// attempt may have committed, a false answer is checked against the row.
func (s *Store) CancelRun(ctx context.Context, id string) (bool, error) {
	var ok bool
	retried, err := s.rpc(ctx, "cancel_run", map[string]any{"p_run_id": id}, restRetrySafe, &ok)
	if err != nil {
		return false, fmt.Errorf("cancel run %s: %w", id, err)
	}
	if ok || !retried {
		return ok, nil
	}
	r, err := s.GetRun(ctx, id)
	if err != nil {
		return false, fmt.Errorf("cancel run %s: check a replayed cancel: %w", id, err)
	}
	return r.Status == executor.StatusCanceled, nil
}

// ApproveRun approves a run waiting before its action phase (approve_run).
func (s *Store) ApproveRun(ctx context.Context, id, approver string) (bool, error) {
	var ok bool
	retried, err := s.rpc(ctx, "approve_run", map[string]any{"p_run_id": id, "p_approver": wire.NullString(approver)}, restRetrySafe, &ok)
	if err != nil {
		return false, fmt.Errorf("approve run %s: %w", id, err)
	}
	if ok || !retried {
		return ok, nil
	}
	r, err := s.GetRun(ctx, id)
	if err != nil {
		return false, fmt.Errorf("approve run %s: check a replayed approval: %w", id, err)
	}
	want := "operator:" + strings.TrimSpace(approver)
	return r.ApprovedAt != nil && r.ApprovedBy != nil && *r.ApprovedBy == want, nil
}

// RejectRun refuses a run waiting for approval (reject_run). reject_run
// answers false to a replay of a rejection that committed, so when an
// earlier attempt may have executed, a false answer is checked against the row.
func (s *Store) RejectRun(ctx context.Context, id, approver, reason string) (bool, error) {
	var ok bool
	retried, err := s.rpc(ctx, "reject_run", map[string]any{"p_run_id": id, "p_reason": reason,
		"p_approver": wire.NullString(approver)}, restRetrySafe, &ok)
	if err != nil {
		return false, fmt.Errorf("reject run %s: %w", id, err)
	}
	if ok || !retried {
		return ok, nil
	}
	r, err := s.GetRun(ctx, id)
	if err != nil {
		return false, fmt.Errorf("reject run %s: check a replayed rejection: %w", id, err)
	}
	return r.RejectedBy != nil && *r.RejectedBy == "operator:"+strings.TrimSpace(approver), nil
}

// SchemaVersion is the newest applied opsd migration (opsd_schema_version).
func (s *Store) SchemaVersion(ctx context.Context) (string, error) {
	var v *string
	if _, err := s.rpc(ctx, "opsd_schema_version", nil, restRetrySafe, &v); err != nil {
		return "", fmt.Errorf("schema version: %w", err)
	}
	if v == nil {
		return "", nil
	}
	return *v, nil
}

// Ping calls ping().
func (s *Store) Ping(ctx context.Context) error {
	var pong string
	if _, err := s.rpc(ctx, "ping", nil, restRetrySafe, &pong); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// Wakeups returns nil: PostgREST cannot push, so the daemon polls.
func (s *Store) Wakeups(context.Context) <-chan string { return nil }

// Close releases idle connections.
func (s *Store) Close() { s.c.close() }

// restNormalizeRuns turns JSON nulls of raw columns into nil, and refuses
// an answer with a null row (which no PostgREST sends, but a proxy might).
func restNormalizeRuns(op string, runs []*executor.Run) error {
	for _, r := range runs {
		if r == nil {
			return restBadAnswer(op, "a null row came back")
		}
		r.Plan, r.Input, r.Output = wire.NullRaw(r.Plan), wire.NullRaw(r.Input), wire.NullRaw(r.Output)
	}
	return nil
}

// restBadAnswer is a 2xx answer whose content makes no sense.
func restBadAnswer(op, msg string) error {
	return &executor.StoreError{Kind: executor.ErrInvalidInput, Op: op, Message: "unexpected answer: " + msg}
}
