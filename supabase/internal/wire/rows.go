package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/opscontrolroom/opsd/executor"
)

// eventRow is a run_events row as append_run_rows and finish_run read it
// (jsonb_to_recordset): every key present in every row, with the writing
// attempt that fences it.
type eventRow struct {
	RunID   string          `json:"run_id"`
	Attempt int             `json:"attempt"`
	Seq     int             `json:"seq"`
	TS      time.Time       `json:"ts"`
	Level   string          `json:"level"`
	Source  string          `json:"source"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Phase   *string         `json:"phase"`
}

// stepRow is a run_steps row as append_run_rows reads it.
type stepRow struct {
	RunID      string          `json:"run_id"`
	Attempt    int             `json:"attempt"`
	Idx        int             `json:"idx"`
	StepID     string          `json:"step_id"`
	Title      string          `json:"title"`
	Kind       string          `json:"kind"`
	Tool       *string         `json:"tool"`
	Action     *string         `json:"action"`
	Args       json.RawMessage `json:"args"`
	Status     string          `json:"status"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
	Error      *string         `json:"error"`
}

// EventRows checks and converts events: each needs a seq (>= 1, so a retry
// is recognised) and its attempt (>= 1, the fence). A zero TS means now.
func EventRows(op string, events []executor.Event) ([]eventRow, error) {
	now := time.Now().UTC()
	rows := make([]eventRow, len(events))
	for i, e := range events {
		if e.Seq < 1 {
			return nil, InvalidInput(op, "event %d of run %s has seq %d: seqs start at 1", i, e.RunID, e.Seq)
		}
		if e.Attempt < 1 {
			return nil, InvalidInput(op, "event %d of run %s has attempt %d: rows carry the writing attempt (>= 1)", i, e.RunID, e.Attempt)
		}
		ts := e.TS
		if ts.IsZero() {
			ts = now
		}
		rows[i] = eventRow{RunID: e.RunID, Attempt: e.Attempt, Seq: e.Seq, TS: ts, Level: e.Level, Source: e.Source,
			Message: Text(e.Message), Data: JSON(e.Data), Phase: NullString(e.Phase)}
	}
	return rows, nil
}

// StepRows converts steps: an empty Kind is "system", an empty Status
// "queued", no Args {}.
func StepRows(op string, steps []executor.Step) ([]stepRow, error) {
	rows := make([]stepRow, len(steps))
	for i, st := range steps {
		if st.Attempt < 1 {
			return nil, InvalidInput(op, "step %d of run %s has attempt %d: rows carry the writing attempt (>= 1)", st.Idx, st.RunID, st.Attempt)
		}
		rows[i] = stepRow{RunID: st.RunID, Attempt: st.Attempt, Idx: st.Idx, StepID: st.StepID, Title: Text(st.Title),
			Kind: st.Kind, Tool: st.Tool, Action: st.Action, Args: JSON(st.Args), Status: st.Status,
			StartedAt: st.StartedAt, FinishedAt: st.FinishedAt, Error: st.Error}
		if st.Error != nil {
			rows[i].Error = ptr(Text(*st.Error))
		}
		if rows[i].Kind == "" {
			rows[i].Kind = "system"
		}
		if rows[i].Args == nil {
			rows[i].Args = json.RawMessage(`{}`)
		}
		if rows[i].Status == "" {
			rows[i].Status = "queued"
		}
	}
	return rows, nil
}

// finishRow is a finish as append_run_rows reads it.
type finishRow struct {
	RunID        string          `json:"run_id"`
	Attempt      int             `json:"attempt"`
	Status       string          `json:"status"`
	ErrorMessage *string         `json:"error_message"`
	Output       json.RawMessage `json:"output"`
}

// RowsArgs is the arguments of append_run_rows (nil for an empty list, so
// it is sent as NULL). The finishes' final events go with the batch's
// events, stamped with their finish's run and attempt.
type RowsArgs struct {
	Events, Steps, Phases, Finishes any
}

// Empty reports whether the batch holds nothing to send.
func (a RowsArgs) Empty() bool {
	return a.Events == nil && a.Steps == nil && a.Phases == nil && a.Finishes == nil
}

// NewRowsArgs checks and encodes a batch: every row carries its writer's
// attempt (>= 1), every event a seq.
func NewRowsArgs(op string, r executor.Rows) (RowsArgs, error) {
	var a RowsArgs
	events := r.Events
	if len(r.Finishes) > 0 {
		events = append([]executor.Event(nil), r.Events...)
		fins := make([]finishRow, len(r.Finishes))
		for i, f := range r.Finishes {
			if f.Attempt < 1 {
				return a, InvalidInput(op, "finish of run %s has attempt %d: rows carry the writing attempt (>= 1)", f.RunID, f.Attempt)
			}
			fins[i] = finishRow{RunID: f.RunID, Attempt: f.Attempt, Status: f.Status,
				ErrorMessage: NullText(f.ErrorMessage), Output: JSON(f.Output)}
			for _, e := range f.Events {
				e.RunID, e.Attempt = f.RunID, f.Attempt
				events = append(events, e)
			}
		}
		a.Finishes = fins
	}
	if len(events) > 0 {
		rows, err := EventRows(op, events)
		if err != nil {
			return a, err
		}
		a.Events = rows
	}
	if len(r.Steps) > 0 {
		rows, err := StepRows(op, r.Steps)
		if err != nil {
			return a, err
		}
		a.Steps = rows
	}
	if len(r.Phases) > 0 {
		for _, p := range r.Phases {
			if p.Attempt < 1 {
				return a, InvalidInput(op, "phase change of run %s has attempt %d: rows carry the writing attempt (>= 1)", p.RunID, p.Attempt)
			}
		}
		a.Phases = r.Phases
	}
	return a, nil
}

// LeaseSeconds is a lease duration in whole seconds, rounded up, at least 1
// (default 30 s).
func LeaseSeconds(d time.Duration) int {
	if d <= 0 {
		return 30
	}
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// LeaseLost is the error of a write refused because the lease is gone.
func LeaseLost(op string, l executor.Lease) error {
	return &executor.StoreError{Kind: executor.ErrLeaseLost, Op: op,
		Message: fmt.Sprintf("run %s is no longer held by worker %s attempt %d", l.RunID, l.Worker, l.Attempt)}
}

func ptr[T any](v T) *T { return &v }
