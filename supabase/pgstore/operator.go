package pgstore

// The operator commands' reads and writes (executor.OperatorStore): submit,
// read and list runs, their events and artifacts, lane counts, cancel,
// approve and reject.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/supabase/internal/wire"
)

// SubmitRun inserts a queued run the way the frontend does: only the columns
// NewRun sets (a browser role may insert only the frontend's columns);
// status, claim columns and created_by keep their defaults.
func (s *Store) SubmitRun(ctx context.Context, r executor.NewRun) (*executor.Run, error) {
	cols := []string{"env", "kind", "plan", "intent", "session_id"}
	args := []any{r.Env, r.Kind, nullJSON(r.Plan), r.Intent, r.SessionID}
	add := func(col string, v any) {
		cols = append(cols, col)
		args = append(args, v)
	}
	if r.Lane != "" {
		add("lane", r.Lane)
	}
	if r.Priority != nil {
		add("priority", int32(*r.Priority))
	}
	if r.TemplateID != nil {
		add("template_id", *r.TemplateID)
	}
	if in := nullJSON(r.Input); in != nil {
		add("input", *in)
	}
	if r.DryRun {
		add("dry_run", true)
	}
	if r.TimeoutSeconds != nil {
		add("timeout_seconds", int32(*r.TimeoutSeconds))
	}
	marks := make([]string, len(cols))
	for i := range cols {
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	sql := fmt.Sprintf(`INSERT INTO public.runs AS r (%s) VALUES (%s) RETURNING `+runJSON,
		strings.Join(cols, ", "), strings.Join(marks, ", "))
	run, err := scanRun(s.pool.QueryRow(ctx, sql, args...))
	if err != nil {
		return nil, pgError(ctx, "submit run", err)
	}
	return run, nil
}

// GetRun loads one run; ErrNotFound when there is none.
func (s *Store) GetRun(ctx context.Context, id string) (*executor.Run, error) {
	run, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runJSON+` FROM public.runs r WHERE r.id = $1`, id))
	if err != nil {
		err = pgError(ctx, "get run "+id, err)
		var se *executor.StoreError
		if errors.As(err, &se) && errors.Is(se.Kind, executor.ErrNotFound) {
			se.Message = fmt.Sprintf("run %s not found", id)
		}
		return nil, err
	}
	return run, nil
}

// ListRuns lists runs newest first. Empty Statuses means all; Limit <= 0
// means no limit.
func (s *Store) ListRuns(ctx context.Context, f executor.RunFilter) ([]*executor.Run, error) {
	var statuses []string
	if len(f.Statuses) > 0 {
		statuses = f.Statuses
	}
	rows, err := s.pool.Query(ctx, `SELECT `+runJSON+` FROM public.runs r
		WHERE $1::text[] IS NULL OR r.status = ANY ($1)
		ORDER BY r.created_at DESC, r.id DESC LIMIT $2`, statuses, limitArg(f.Limit))
	if err != nil {
		return nil, pgError(ctx, "list runs", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, pgError(ctx, "list runs", err)
	}
	return runs, nil
}

// LaneCounts reports queued and running runs per lane (opsd_lane_counts).
func (s *Store) LaneCounts(ctx context.Context) ([]executor.LaneCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT lane, queued, running FROM public.opsd_lane_counts()`)
	if err != nil {
		return nil, pgError(ctx, "opsd_lane_counts", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (executor.LaneCount, error) {
		var lc executor.LaneCount
		err := r.Scan(&lc.Lane, &lc.Queued, &lc.Running)
		return lc, err
	})
	if err != nil {
		return nil, pgError(ctx, "opsd_lane_counts", err)
	}
	return out, nil
}

// CancelRun cancels a queued or running run (cancel_run); false when it was
// already terminal or does not exist.
func (s *Store) CancelRun(ctx context.Context, id string) (bool, error) {
	return s.queryBool(ctx, "cancel_run "+id, `SELECT public.cancel_run($1)`, id)
}

// ApproveRun approves a run waiting before its action phase (approve_run).
func (s *Store) ApproveRun(ctx context.Context, id, approver string) (bool, error) {
	return s.queryBool(ctx, "approve_run "+id, `SELECT public.approve_run($1, $2)`, id, approver)
}

// RejectRun refuses a run waiting for approval (reject_run).
func (s *Store) RejectRun(ctx context.Context, id, approver, reason string) (bool, error) {
	return s.queryBool(ctx, "reject_run "+id, `SELECT public.reject_run($1, $2, $3)`, id, reason, approver)
}

// ListEvents returns a run's events with seq > afterSeq in seq order; limit
// <= 0 means all.
func (s *Store) ListEvents(ctx context.Context, runID string, afterSeq int, limit int) ([]executor.Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT run_id::text, seq, ts, level, source, message, data, coalesce(phase, '')
		  FROM public.run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		runID, afterSeq, limitArg(limit))
	if err != nil {
		return nil, pgError(ctx, "list events of run "+runID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (executor.Event, error) {
		var e executor.Event
		var data []byte
		err := r.Scan(&e.RunID, &e.Seq, &e.TS, &e.Level, &e.Source, &e.Message, &data, &e.Phase)
		e.Data = wire.NullRaw(data)
		return e, err
	})
	if err != nil {
		return nil, pgError(ctx, "list events of run "+runID, err)
	}
	return out, nil
}

// ListArtifacts returns a run's artifacts in the order they were written.
func (s *Store) ListArtifacts(ctx context.Context, runID string) ([]executor.Artifact, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, run_id::text, created_at, kind, title, value
		FROM public.artifacts WHERE run_id = $1 ORDER BY id`, runID)
	if err != nil {
		return nil, pgError(ctx, "list artifacts of run "+runID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (executor.Artifact, error) {
		var a executor.Artifact
		err := r.Scan(&a.ID, &a.RunID, &a.CreatedAt, &a.Kind, &a.Title, &a.Value)
		return a, err
	})
	if err != nil {
		return nil, pgError(ctx, "list artifacts of run "+runID, err)
	}
	return out, nil
}
