package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Redactor removes secrets from text before it leaves the process.
// internal/redact.Redactor implements it.
type Redactor interface {
	String(s string) string
	JSON(raw json.RawMessage) json.RawMessage
}

type nopRedactor struct{}

func (nopRedactor) String(s string) string                   { return s }
func (nopRedactor) JSON(raw json.RawMessage) json.RawMessage { return raw }

// maxChattyRow is the most a coalesced row holds. When a run's output fills
// a row faster than the rate limit allows rows, Log waits for the limit
// (back-pressure on the producer), so memory stays bounded, nothing is
// dropped, and the run still writes at most rowsPerSecond rows.
const maxChattyRow = 64 << 10

// Emitter writes one run's events: it numbers them 1..n (continuing from the
// run's next_seq after a retry), stamps the current phase, redacts, and
// coalesces chatty output (Log) into multi-line rows at a bounded rate so a
// log flood cannot flood Supabase Realtime. Safe for concurrent use.
type Emitter struct {
	runID    string
	writer   *Writer
	redact   Redactor
	interval time.Duration // least time between two coalesced rows
	ctx      context.Context
	gen      uint64 // this attempt's generation in the writer
	attempt  int    // the run's attempt: every row carries it (the fencing token)

	mu          sync.Mutex
	seq         int
	phase       string
	pending     []string
	pendingSrc  string
	pendingSize int
	lastChatty  time.Time
	timer       *time.Timer
	lines       int64 // chatty lines accepted
	rows        int64 // rows emitted
}

// NewEmitter returns the emitter of one run attempt. attempt is the lease's
// attempt (its rows are stored only while it holds the run); nextSeq is the
// seq of its first event; rowsPerSecond caps coalesced rows (default 10). ctx
// bounds the back-pressure waits of the run.
func (w *Writer) NewEmitter(ctx context.Context, runID string, attempt, nextSeq int, rowsPerSecond float64, r Redactor) *Emitter {
	if nextSeq < 1 {
		nextSeq = 1
	}
	if rowsPerSecond <= 0 {
		rowsPerSecond = 10
	}
	if r == nil {
		r = nopRedactor{}
	}
	return &Emitter{runID: runID, writer: w, redact: r, ctx: ctx, seq: nextSeq - 1, gen: w.gens.Add(1), attempt: attempt,
		interval: time.Duration(float64(time.Second) / rowsPerSecond)}
}

func (e *Emitter) setContext(ctx context.Context) {
	e.mu.Lock()
	e.ctx = ctx
	e.mu.Unlock()
}

// SetPhase stamps later events with phase.
func (e *Emitter) SetPhase(phase string) {
	e.mu.Lock()
	e.phase = phase
	e.mu.Unlock()
}

// Emit writes one event. Chatty lines still pending are written first, so
// the run's order is kept. data may be nil, json.RawMessage or any value
// encoding/json accepts.
func (e *Emitter) Emit(level, source, message string, data any) error {
	raw, err := encodeData(data)
	if err != nil {
		return fmt.Errorf("event data: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.flushPendingLocked(); err != nil {
		return err
	}
	return e.pushLocked(level, source, message, raw)
}

// Log accepts one line of chatty output (a build log, say). Lines are
// coalesced into rows of many lines, at most about rowsPerSecond rows a
// second; none is dropped. When a run logs more than a full row (64 KiB)
// per row interval, Log blocks until the next row may be written.
func (e *Emitter) Log(source, line string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.pending) > 0 && source != e.pendingSrc {
		if err := e.flushPendingLocked(); err != nil {
			return err
		}
	}
	if err := e.waitRowLocked(); err != nil {
		return err
	}
	e.pending = append(e.pending, line)
	e.pendingSrc = source
	e.pendingSize += len(line) + 1
	e.lines++
	if time.Since(e.lastChatty) >= e.interval {
		return e.flushPendingLocked()
	}
	if e.timer == nil {
		e.timer = time.AfterFunc(e.interval-time.Since(e.lastChatty), e.timerFlush)
	}
	return nil
}

// waitRowLocked waits, with e.mu released, while the pending row is full
// and the rate limit does not allow the next row yet; then it writes the
// full row. When the run's context ends the row is written at once.
func (e *Emitter) waitRowLocked() error {
	for e.pendingSize >= maxChattyRow {
		wait := e.interval - time.Since(e.lastChatty)
		ctx := e.ctx
		if wait <= 0 || ctx.Err() != nil {
			return e.flushPendingLocked()
		}
		t := time.NewTimer(wait)
		e.mu.Unlock()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		e.mu.Lock()
	}
	return nil
}

func (e *Emitter) timerFlush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.timer = nil
	if wait := e.interval - time.Since(e.lastChatty); wait > 0 && len(e.pending) > 0 {
		// A row was written since this timer was set: keep the rate.
		e.timer = time.AfterFunc(wait, e.timerFlush)
		return
	}
	_ = e.flushPendingLocked() // an error here means the run is over; Close reports it
}

// Close writes pending chatty lines. The run's rows are then queued; use
// Writer.Sync to wait until they are stored.
func (e *Emitter) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	return e.flushPendingLocked()
}

// Stats reports chatty lines accepted and rows emitted so far.
func (e *Emitter) Stats() (lines, rows int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lines, e.rows
}

// LastSeq is the seq of the newest event emitted.
func (e *Emitter) LastSeq() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seq
}

func (e *Emitter) flushPendingLocked() error {
	if len(e.pending) == 0 {
		return nil
	}
	msg := strings.Join(e.pending, "\n")
	n := len(e.pending)
	src := e.pendingSrc
	e.pending, e.pendingSize = e.pending[:0], 0
	e.lastChatty = time.Now()
	var data json.RawMessage
	if n > 1 {
		data = json.RawMessage(fmt.Sprintf(`{"lines":%d}`, n))
	}
	return e.pushLocked(LevelInfo, src, msg, data)
}

func (e *Emitter) pushLocked(level, source, message string, data json.RawMessage) error {
	ev := e.nextLocked(level, source, message, data)
	if err := e.writer.enqueue(e.ctx, item{event: ev}); err != nil {
		e.seq-- // not queued: the number is free again, so seq stays gapless
		return fmt.Errorf("queue event %d of run %s: %w", ev.Seq, e.runID, err)
	}
	e.rows++
	return nil
}

// RecordPhase stamps later events with phase and queues the change of the
// run's phase (runs.phase) with the run's rows: it is stored, fenced, with
// the next flush. For the changes that need not be synchronous (all but the
// change into action).
func (e *Emitter) RecordPhase(phase string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.phase = phase
	pc := &PhaseChange{RunID: e.runID, Attempt: e.attempt, Phase: phase, gen: e.gen}
	if err := e.writer.enqueue(e.ctx, item{phase: pc}); err != nil {
		return fmt.Errorf("queue phase %s of run %s: %w", phase, e.runID, err)
	}
	return nil
}

// nextLocked numbers and stamps the next event.
func (e *Emitter) nextLocked(level, source, message string, data json.RawMessage) *Event {
	e.seq++
	ev := &Event{RunID: e.runID, Seq: e.seq, TS: time.Now(), Level: level, Source: source,
		Message: e.redact.String(message), Phase: e.phase, Attempt: e.attempt, gen: e.gen}
	if len(data) > 0 {
		ev.Data = e.redact.JSON(data)
	}
	return ev
}

// Final numbers the run's last event without queueing it: the caller stores
// it with the fenced finish, in the same transaction as the status.
func (e *Emitter) Final(level, source, message string, data any) (Event, error) {
	raw, err := encodeData(data)
	if err != nil {
		return Event{}, fmt.Errorf("final event of run %s: data: %w", e.runID, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rows++
	return *e.nextLocked(level, source, message, raw), nil
}

func encodeData(data any) (json.RawMessage, error) {
	switch d := data.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if len(d) == 0 || string(d) == "null" {
			return nil, nil
		}
		if !json.Valid(d) {
			return nil, fmt.Errorf("not valid JSON")
		}
		return d, nil
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		if string(b) == "null" {
			return nil, nil
		}
		return b, nil
	}
}
