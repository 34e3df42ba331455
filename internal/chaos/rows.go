package chaos

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The rows the invariants are checked on: runs, their events, and the
// attempts the events show.

type runRow struct {
	id, status, lane string
	session          *string
	attempt          int
	finishedAt       *time.Time
	errorMessage     string
	canceledAt       *time.Time
	events           []eventRow
	attempts         []*attemptSpan
}

type eventRow struct {
	phase   string
	seq     int
	ts      time.Time
	level   string
	source  string
	message string
	data    map[string]any
}

// attemptSpan is one attempt of a run as its events show it: from its
// "claimed by W (attempt n of m)" event to its last event, stretched to the
// moment its daemon logged that it had lost the lease, if it did.
type attemptSpan struct {
	run       *runRow
	worker    string
	n         int
	claim     time.Time
	lastEvent time.Time
	lostAt    time.Time // the daemon noticed it had lost the lease (zero if never)
	// reapedAlive: the reaper settled this attempt while its daemon lived.
	reapedAlive bool
}

// markReapedAlive flags the attempts the reaper settled while their daemon
// was still running (cut off from the database, not killed).
func markReapedAlive(runs []*runRow, workers map[string]*proc) {
	for _, r := range runs {
		for _, a := range r.attempts {
			p := workers[a.worker]
			for _, e := range r.events {
				if e.isReaper() && e.str("worker") == a.worker && !e.ts.Before(a.claim) &&
					p != nil && (p.killed.IsZero() || e.ts.Before(p.killed)) {
					a.reapedAlive = true
				}
			}
		}
	}
}

func (a *attemptSpan) end() time.Time {
	if a.lostAt.After(a.lastEvent) {
		return a.lostAt
	}
	return a.lastEvent
}

// timeline renders a run's events for a violation report.
func (r *runRow) timeline() string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %s (%s, lane %s, attempt %d):\n", r.id, r.status, r.lane, r.attempt)
	for _, e := range r.events {
		msg := e.message
		if len(msg) > 110 {
			msg = msg[:110] + "…"
		}
		fmt.Fprintf(&b, "      #%-3d %s %-9s %-7s %-6s %s\n", e.seq, e.ts.Format("15:04:05.000"), e.phase, e.level, e.source, msg)
	}
	return b.String()
}

func (e eventRow) str(key string) string { s, _ := e.data[key].(string); return s }

func (e eventRow) num(key string) int { f, _ := e.data[key].(float64); return int(f) }

func (e eventRow) isClaim() bool {
	return e.source == "System" && strings.HasPrefix(e.message, "claimed by ")
}

func (e eventRow) isReaper() bool {
	return e.source == "System" && strings.Contains(e.message, " was lost in phase ")
}

// isRelease: the attempt gave the run back to the queue, by a release on
// shutdown or by an automatic retry's requeue (which waits its backoff queued,
// not running).
func (e eventRow) isRelease() bool {
	return e.source == "System" && (strings.Contains(e.message, "released the run back to the queue") ||
		(e.data["retry"] == true && strings.Contains(e.message, "before any action")))
}

// isFinal: the System events that end a run.
func (e eventRow) isFinal() bool {
	return e.source == "System" && (strings.HasPrefix(e.message, "run succeeded in ") ||
		strings.HasPrefix(e.message, "run canceled") || e.level == "error" || e.isReaper())
}

// load reads every run with its events.
func (h *harness) load() ([]*runRow, error) {
	ctx, cancel := h.ctx()
	defer cancel()
	rows, err := h.db.Pool.Query(ctx, `SELECT id, status, lane, session_id, attempt, finished_at, canceled_at, coalesce(error_message, '')
		FROM runs ORDER BY created_at`)
	if err != nil {
		return nil, err
	}
	byID := map[string]*runRow{}
	var runs []*runRow
	for rows.Next() {
		r := &runRow{}
		if err := rows.Scan(&r.id, &r.status, &r.lane, &r.session, &r.attempt, &r.finishedAt, &r.canceledAt, &r.errorMessage); err != nil {
			return nil, err
		}
		runs = append(runs, r)
		byID[r.id] = r
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = h.db.Pool.Query(ctx, `SELECT run_id, seq, ts, level, source, message, coalesce(data, '{}'::jsonb), coalesce(phase, '')
		FROM run_events ORDER BY run_id, seq`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		var e eventRow
		var data []byte
		if err := rows.Scan(&id, &e.seq, &e.ts, &e.level, &e.source, &e.message, &data, &e.phase); err != nil {
			return nil, err
		}
		_ = json.Unmarshal(data, &e.data)
		if r := byID[id]; r != nil {
			r.events = append(r.events, e)
		}
	}
	return runs, rows.Err()
}

// spans splits each run's events into attempts and stretches each attempt
// to the time its daemon logged losing the lease.
func spans(runs []*runRow, logs []logLine) {
	byID := map[string]*runRow{}
	for _, r := range runs {
		byID[r.id] = r
		var cur *attemptSpan
		for _, e := range r.events {
			switch {
			case e.isClaim():
				cur = &attemptSpan{run: r, worker: e.str("worker"), n: e.num("attempt"), claim: e.ts, lastEvent: e.ts}
				r.attempts = append(r.attempts, cur)
			case cur == nil:
			case e.isReaper() || e.isRelease():
				// The attempt ends here. What follows until the next claim
				// happened while the run was queued ("run canceled before
				// it started"), or is a cut-off daemon's late rows, which
				// the ordering checks and its "lease lost" log account for.
				cur.lastEvent = e.ts
				cur = nil
			default:
				cur.lastEvent = e.ts
			}
		}
	}
	// Only "lease lost" is logged the moment the attempt stopped; a refused
	// or failed finish is logged after the final event was flushed and the
	// finish retried, so its time says nothing precise about the end.
	for _, l := range logs {
		if l.runID == "" || l.msg != msgLeaseLost {
			continue
		}
		r := byID[l.runID]
		if r == nil {
			continue
		}
		var best *attemptSpan
		for _, a := range r.attempts {
			if a.worker == l.worker && !a.claim.After(l.ts) {
				best = a
			}
		}
		if best != nil && l.ts.After(best.lostAt) {
			best.lostAt = l.ts
		}
	}
}
