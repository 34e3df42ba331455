package executor

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/internal/backoff"
)

var errWriterStopped = errors.New("event writer stopped")

// WriterConfig tunes the shared event writer.
type WriterConfig struct {
	FlushInterval time.Duration // longest a row waits before it is written; default 50ms
	BatchSize     int           // rows per insert; default 500
	BufferSize    int           // rows held while the store is slow or down; default 20,000
	RetryMin      time.Duration // first retry delay of a failed batch; default 100ms
	RetryMax      time.Duration // longest retry delay; default 5s
}

func (c *WriterConfig) defaults() {
	if c.FlushInterval <= 0 {
		c.FlushInterval = 50 * time.Millisecond
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.BufferSize <= 0 {
		c.BufferSize = 20000
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Second
	}
}

// item is what the writer queue carries: an event row, a step row, a phase
// change, or a barrier that is released once everything queued before it is
// written.
type item struct {
	event   *Event
	step    *Step
	phase   *PhaseChange
	finish  *pendingFinish
	barrier chan struct{}
}

// pendingFinish is a run's terminal write waiting for the writer's next
// flush; the writer answers on done (buffered) exactly once.
type pendingFinish struct {
	f    Finish
	gen  uint64
	done chan finishResult
}

type finishResult struct {
	ok  bool // the run is finished; false when its lease was gone
	err error
}

func (p *pendingFinish) reply(ok bool, err error) { p.done <- finishResult{ok, err} }

// batch is the rows of one flush.
type batch struct {
	events   []Event
	steps    []Step
	phases   []PhaseChange
	finishes []*pendingFinish
	barriers []chan struct{}
}

func (b *batch) add(it item) {
	switch {
	case it.event != nil:
		b.events = append(b.events, *it.event)
	case it.step != nil:
		b.steps = append(b.steps, *it.step)
	case it.phase != nil:
		b.phases = append(b.phases, *it.phase)
	case it.finish != nil:
		b.finishes = append(b.finishes, it.finish)
	case it.barrier != nil:
		b.barriers = append(b.barriers, it.barrier)
	}
}

func (b *batch) rows() int { return len(b.events) + len(b.steps) + len(b.phases) + len(b.finishes) }

// Writer batches event rows, step rows, phase changes and finishes of all
// runs into one call per flush (a group commit). Rows of one run keep their
// order; a failed batch is retried (idempotently, by (run_id, seq) and
// (run_id, idx); a phase only moves forward; a replayed finish is refused)
// until it is written, while the bounded queue applies back-pressure to the
// runs instead of dropping anything.
type Writer struct {
	store   Store
	worker  string // the writing daemon's worker id: rows are fenced by (worker, attempt)
	cfg     WriterConfig
	log     *zap.Logger
	metrics *Metrics

	queue    chan item
	done     chan struct{}
	stop     context.CancelFunc
	ctx      context.Context
	mu       sync.RWMutex // guards closed against sends on a closed queue
	closed   bool
	closedAt atomic.Int64  // unix ns when Stop closed the queue (a graceful drain began); read without mu
	lost     sync.Map      // emitter generation -> struct{}: attempts whose rows are no longer ours to write
	gens     atomic.Uint64 // generations handed to emitters, one per run attempt

	// onRefused is told of leases whose rows the database refused (the
	// attempt no longer holds its run); the daemon stops those runs.
	onRefused func([]Lease)
}

// Forget drops the rows of one run attempt (an emitter's generation) whose
// lease is lost, queued or being retried: that attempt no longer owns the
// run, and writing them later would put them after the reaper's or the next
// attempt's events. A later attempt of the same run has a new generation.
func (w *Writer) Forget(gen uint64) { w.lost.Store(gen, struct{}{}) }

func (w *Writer) isLost(gen uint64) bool {
	_, ok := w.lost.Load(gen)
	return ok
}

func liveRows[T any](w *Writer, rows []T, genOf func(T) uint64) []T {
	out := rows[:0:0]
	for _, r := range rows {
		if !w.isLost(genOf(r)) {
			out = append(out, r)
		}
	}
	return out
}

// NewWriter returns the writer of worker's rows; call Start before use and
// Stop to flush.
func NewWriter(store Store, worker string, cfg WriterConfig, log *zap.Logger, m *Metrics) *Writer {
	cfg.defaults()
	if log == nil {
		log = zap.NewNop()
	}
	return &Writer{store: store, worker: worker, cfg: cfg, log: log, metrics: m,
		queue: make(chan item, cfg.BufferSize), done: make(chan struct{})}
}

// Start runs the flush loop until Stop. ctx is the hard stop: when it is
// cancelled, rows still queued are abandoned.
func (w *Writer) Start(ctx context.Context) {
	w.ctx, w.stop = context.WithCancel(ctx)
	go w.loop()
}

// Stop flushes everything queued so far and stops the loop; it gives up
// when ctx ends.
func (w *Writer) Stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		w.closedAt.Store(time.Now().UnixNano())
		close(w.queue)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.stop()
		<-w.done
		return ctx.Err()
	}
}

// enqueue blocks while the queue is full (back-pressure) until ctx ends.
func (w *Writer) enqueue(ctx context.Context, it item) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return errWriterStopped
	}
	select {
	case w.queue <- it:
		return nil
	default:
	}
	if w.metrics != nil {
		w.metrics.WriterBackpressure.Inc()
	}
	select {
	case w.queue <- it:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Sync returns once every row queued before the call is in the store.
func (w *Writer) Sync(ctx context.Context) error {
	b := make(chan struct{})
	if err := w.enqueue(ctx, item{barrier: b}); err != nil {
		return err
	}
	select {
	case <-b:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-w.done:
		select {
		case <-b:
			return nil
		default:
			return errWriterStopped
		}
	}
}

func (w *Writer) loop() {
	defer close(w.done)
	defer w.stop()
	var (
		b         batch
		oldest    time.Time
		lastFlush time.Time
		timer     = time.NewTimer(time.Hour)
	)
	timer.Stop()
	flush := func() {
		if b.rows() > 0 {
			w.write(b, oldest)
			lastFlush = time.Now()
		}
		for _, c := range b.barriers {
			close(c)
		}
		b = batch{events: b.events[:0], steps: b.steps[:0], phases: b.phases[:0], finishes: b.finishes[:0], barriers: b.barriers[:0]}
		oldest = time.Time{}
	}
	for {
		select {
		case it, ok := <-w.queue:
			if !ok {
				flush()
				return
			}
			b.add(it)
			// The first row after a quiet flush interval is written at
			// once (with whatever is already queued), so a run's first
			// event is not held back; rows that follow a write wait up to
			// the flush interval and go together. Inserts stay at about one
			// per interval either way.
			idle := false
			if oldest.IsZero() {
				oldest = time.Now()
				idle = oldest.Sub(lastFlush) >= w.cfg.FlushInterval
				timer.Reset(w.cfg.FlushInterval)
			}
			// A barrier, a finish, a full batch or an idle writer flushes
			// now; otherwise keep collecting until the flush interval is
			// up. Finishes that arrive while a flush is under way go
			// together in the next one (group commit).
			if idle || it.barrier != nil || it.finish != nil || b.rows() >= w.cfg.BatchSize {
				w.drainReady(&b)
				flush()
				timer.Stop()
			}
		case <-timer.C:
			w.drainReady(&b)
			flush()
		case <-w.ctx.Done():
			for _, c := range b.barriers {
				close(c)
			}
			for _, p := range b.finishes {
				p.reply(false, errWriterStopped)
			}
			return
		}
	}
}

// drainReady takes what is already queued (without waiting) up to a batch,
// so one call carries as much as is available.
func (w *Writer) drainReady(b *batch) {
	for b.rows() < w.cfg.BatchSize {
		select {
		case it, ok := <-w.queue:
			if !ok {
				return
			}
			b.add(it)
		default:
			return
		}
	}
}

// write stores one batch in one call, retrying failures with jittered
// backoff until it succeeds or the writer is hard-stopped. Retrying is safe:
// the write is idempotent. Only a failure about the batch's data (a row the
// database rejects) is not retried: it is narrowed down by halving the
// batch, so only the bad row is dropped, and loudly, while the rest of the
// batch is stored.
func (w *Writer) write(b batch, oldest time.Time) {
	rows := Rows{Events: b.events, Steps: lastStepPerIdx(b.steps), Phases: b.phases}
	if len(b.finishes) == 0 {
		w.writeRows(rows)
	} else {
		w.writeWithFinishes(rows, b.finishes)
	}
	if w.metrics != nil {
		w.metrics.EventRows.Add(float64(len(b.events)))
		w.metrics.FlushLatency.Observe(time.Since(oldest).Seconds())
	}
}

func (w *Writer) writeRows(r Rows) {
	n := len(r.Events) + len(r.Steps) + len(r.Phases)
	if n == 0 {
		return
	}
	var refused []Lease
	err := w.retry("rows", func(ctx context.Context) error {
		rows := Rows{
			Events: liveRows(w, r.Events, func(e Event) uint64 { return e.gen }),
			Steps:  liveRows(w, r.Steps, func(s Step) uint64 { return s.gen }),
			Phases: liveRows(w, r.Phases, func(p PhaseChange) uint64 { return p.gen }),
		}
		if len(rows.Events)+len(rows.Steps)+len(rows.Phases) == 0 {
			return nil
		}
		var err error
		refused, err = w.store.AppendRows(ctx, w.worker, rows)
		return err
	})
	if err == nil || w.ctx.Err() != nil {
		if len(refused) > 0 {
			w.log.Warn("rows refused by the database: these attempts no longer hold their runs",
				zap.Int("leases", len(refused)), zap.String("run_id", refused[0].RunID), zap.Int("attempt", refused[0].Attempt))
			if w.onRefused != nil {
				w.onRefused(refused)
			}
		}
		return
	}
	switch {
	case n == 1 && len(r.Events) == 1:
		w.log.Error("event rejected by the database; dropped", zap.String("run_id", r.Events[0].RunID),
			zap.Int("seq", r.Events[0].Seq), zap.Error(err))
	case n == 1 && len(r.Steps) == 1:
		w.log.Error("run step rejected by the database; dropped", zap.String("run_id", r.Steps[0].RunID),
			zap.Int("idx", r.Steps[0].Idx), zap.Error(err))
	case n == 1:
		w.log.Error("phase change rejected by the database; dropped", zap.String("run_id", r.Phases[0].RunID),
			zap.String("phase", r.Phases[0].Phase), zap.Error(err))
	case len(r.Events) > 0 && len(r.Events) < n:
		w.writeRows(Rows{Events: r.Events})
		w.writeRows(Rows{Steps: r.Steps, Phases: r.Phases})
	case len(r.Steps) > 0 && len(r.Steps) < n:
		w.writeRows(Rows{Steps: r.Steps})
		w.writeRows(Rows{Phases: r.Phases})
	case len(r.Events) > 0:
		w.writeRows(Rows{Events: r.Events[:len(r.Events)/2]})
		w.writeRows(Rows{Events: r.Events[len(r.Events)/2:]})
	case len(r.Steps) > 0:
		w.writeRows(Rows{Steps: r.Steps[:len(r.Steps)/2]})
		w.writeRows(Rows{Steps: r.Steps[len(r.Steps)/2:]})
	default:
		w.writeRows(Rows{Phases: r.Phases[:len(r.Phases)/2]})
		w.writeRows(Rows{Phases: r.Phases[len(r.Phases)/2:]})
	}
}

// writeWithFinishes stores rows and finishes in one call and tells each
// finish how it went. When the database rejects the batch, the rows are
// narrowed down as writeRows does and each finish is made on its own
// (FinishRun, with its final event), so one bad row fails no finish.
func (w *Writer) writeWithFinishes(r Rows, fins []*pendingFinish) {
	var (
		refused []Lease
		sent    []*pendingFinish
	)
	err := w.retry("rows and finishes", func(ctx context.Context) error {
		sent = sent[:0]
		rows := Rows{
			Events: liveRows(w, r.Events, func(e Event) uint64 { return e.gen }),
			Steps:  liveRows(w, r.Steps, func(s Step) uint64 { return s.gen }),
			Phases: liveRows(w, r.Phases, func(p PhaseChange) uint64 { return p.gen }),
		}
		for _, p := range fins {
			if !w.isLost(p.gen) {
				sent = append(sent, p)
				rows.Finishes = append(rows.Finishes, p.f)
			}
		}
		var err error
		refused, err = w.store.AppendRows(ctx, w.worker, rows)
		return err
	})
	if err != nil && w.ctx.Err() == nil {
		w.writeRows(r)
		for _, p := range fins {
			w.finishAlone(p)
		}
		return
	}
	if len(refused) > 0 {
		w.log.Warn("rows refused by the database: these attempts no longer hold their runs",
			zap.Int("leases", len(refused)), zap.String("run_id", refused[0].RunID), zap.Int("attempt", refused[0].Attempt))
		if w.onRefused != nil {
			w.onRefused(refused)
		}
	}
	for _, p := range fins {
		switch {
		case err != nil:
			p.reply(false, err)
		case !slices.Contains(sent, p):
			p.reply(false, nil) // its attempt lost the run meanwhile
		default:
			p.reply(!slices.Contains(refused, Lease{RunID: p.f.RunID, Worker: w.worker, Attempt: p.f.Attempt}), nil)
		}
	}
}

// finishAlone makes one finish by its own call.
func (w *Writer) finishAlone(p *pendingFinish) {
	if w.isLost(p.gen) {
		p.reply(false, nil)
		return
	}
	var ok bool
	err := w.retry("finish", func(ctx context.Context) error {
		var err error
		ok, err = w.store.FinishRun(ctx, p.f)
		return err
	})
	p.reply(ok, err)
}

// Finish queues a run's terminal write (with its final event, f.Events)
// behind every row queued before it and waits until it is stored: in the
// writer's next flush, one transaction with the rows of that flush. gen is
// the run attempt's emitter generation. False when the lease was gone.
func (w *Writer) Finish(ctx context.Context, f Finish, gen uint64) (bool, error) {
	p := &pendingFinish{f: f, gen: gen, done: make(chan finishResult, 1)}
	if err := w.enqueue(ctx, item{finish: p}); err != nil {
		return false, err
	}
	select {
	case r := <-p.done:
		return r.ok, r.err
	case <-ctx.Done():
		return false, context.Cause(ctx)
	case <-w.done:
		select {
		case r := <-p.done:
			return r.ok, r.err
		default:
			return false, errWriterStopped
		}
	}
}

// stopDrainLimit bounds how long a graceful stop keeps retrying rows the
// store refuses for a reason that is not about them.
const stopDrainLimit = 5 * time.Second

// draining reports how long ago a graceful stop began, if one has. It
// takes no lock: the flush loop calls it while senders may hold mu.
func (w *Writer) draining() (time.Duration, bool) {
	at := w.closedAt.Load()
	if at == 0 {
		return 0, false
	}
	return time.Since(time.Unix(0, at)), true
}

// rowError reports whether err is about the rows sent (a value the database
// rejects, a key that conflicts, a row of an attempt that lost its lease):
// only then may the batch be split and a row dropped. Any other error is
// about the store (a revoked grant, a function missing or not yet in
// PostgREST's schema cache after a migration) and would refuse every row
// alike, so dropping them one by one would lose a whole run's output.
func rowError(err error) bool {
	return errors.Is(err, ErrInvalidInput) || errors.Is(err, ErrConflict) || errors.Is(err, ErrLeaseLost)
}

// retry calls fn until it succeeds, fails on a bad row (returned), or the
// writer is hard-stopped.
func (w *Writer) retry(what string, fn func(ctx context.Context) error) error {
	wait := backoff.Policy{Min: w.cfg.RetryMin, Max: w.cfg.RetryMax}
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
		err := fn(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if w.metrics != nil {
			w.metrics.StoreErrors.WithLabelValues(errorKind(err)).Inc()
		}
		if w.ctx.Err() != nil {
			w.log.Warn("event writer stopped with rows unwritten", zap.String("rows", what))
			return err
		}
		switch {
		case rowError(err):
			return err
		case Retryable(err) || errors.Is(err, context.DeadlineExceeded):
			w.log.Warn("write "+what+" failed; retrying", zap.Int("attempt", attempt), zap.Error(err))
		default:
			// Not transient, yet no fault of the rows: an operator must act
			// (grants, migrations, reloading PostgREST's schema cache), which
			// may never happen. During a graceful stop the drain gives up
			// after stopDrainLimit rather than hold the process until its
			// supervisor kills it.
			if since, closing := w.draining(); closing && since >= stopDrainLimit {
				w.log.Error("shutting down: the store still refuses the rows for a reason not about them; the rows still queued are abandoned",
					zap.String("rows", what), zap.Duration("drained_for", since.Round(time.Millisecond)), zap.Error(err))
				w.stop()
				return err
			}
			w.log.Error("write "+what+" refused by the store for a reason not about the rows; kept and retried until the store accepts them",
				zap.Int("attempt", attempt), zap.String("kind", errorKind(err)), zap.Error(err))
		}
		_ = backoff.Sleep(w.ctx, wait.Delay(attempt)) // a hard stop ends the wait; the loop then returns
	}
}

// lastStepPerIdx keeps the newest row of each (run_id, idx): one upsert may
// not touch a row twice, and the newest state is the one that matters.
func lastStepPerIdx(steps []Step) []Step {
	if len(steps) < 2 {
		return steps
	}
	type key struct {
		run string
		idx int
	}
	last := make(map[key]int, len(steps))
	for i, s := range steps {
		last[key{s.RunID, s.Idx}] = i
	}
	if len(last) == len(steps) {
		return steps
	}
	out := make([]Step, 0, len(last))
	for i, s := range steps {
		if last[key{s.RunID, s.Idx}] == i {
			out = append(out, s)
		}
	}
	return out
}
