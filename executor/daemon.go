// Package executor is the heart of opsd: it claims runs lane by lane, runs
// their five phases (validate, preflight, action, verify, summarize) through a
// Runbook, streams events in batches, heartbeats its leases, reaps runs whose
// daemon died, honours cancels, and shuts down in two stages.
package executor

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/internal/backoff"
	"github.com/opscontrolroom/opsd/internal/uuid"
)

// Daemon claims and executes runs. Start it once; Stop it once.
type Daemon struct {
	cfg      Config
	store    Store
	resolver Resolver
	log      *zap.Logger
	metrics  *Metrics
	writer   *Writer

	wake map[string]chan struct{}
	// claimTokens holds, per lane, the token of a claim whose outcome is
	// unknown (its call failed): the next claim replays it, so runs it may
	// have claimed are started instead of left to the reaper.
	claimTokens map[string]string

	mu sync.Mutex
	// inflight holds, per run, the attempt this daemon executes for it. An
	// older attempt of the same run may still be unwinding (its lease was
	// reaped and the run claimed again): it is no longer listed, but it still
	// counts in running and perLane until it returns.
	inflight   map[string]*execution
	running    int
	perLane    map[string]int
	lastHBOK   time.Time
	lastHBTry  time.Time
	lastBusy   time.Time
	firstClaim time.Time

	runBase    context.Context // parent of every run's context
	cancelRuns context.CancelCauseFunc
	stopClaims context.CancelFunc
	stopBG     context.CancelFunc
	claimWG    sync.WaitGroup
	runWG      sync.WaitGroup
	bgWG       sync.WaitGroup
	idle       chan struct{}
	started    time.Time
}

// New returns a daemon; metrics may be nil (a fresh set is made).
func New(cfg Config, store Store, resolver Resolver, log *zap.Logger, metrics *Metrics) (*Daemon, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if metrics == nil {
		metrics = NewMetrics()
	}
	d := &Daemon{cfg: cfg, store: store, resolver: resolver, log: log, metrics: metrics,
		wake: map[string]chan struct{}{}, claimTokens: map[string]string{}, inflight: map[string]*execution{}, perLane: map[string]int{},
		idle: make(chan struct{})}
	for _, l := range cfg.Lanes {
		d.wake[l] = make(chan struct{}, 1)
	}
	d.writer = NewWriter(store, cfg.WorkerID, cfg.Writer, log, metrics)
	d.writer.onRefused = d.leasesRefused
	return d, nil
}

// Metrics returns the daemon's metrics.
func (d *Daemon) Metrics() *Metrics { return d.metrics }

// WorkerID is the id this daemon claims as.
func (d *Daemon) WorkerID() string { return d.cfg.WorkerID }

// Start begins claiming, heartbeating and reaping, and returns at once.
// Cancelling ctx is the hard stop; Stop is the graceful one.
func (d *Daemon) Start(ctx context.Context) {
	d.started = time.Now()
	d.lastHBOK, d.lastBusy, d.lastHBTry = d.started, d.started, d.started
	d.writer.Start(ctx)
	d.runBase, d.cancelRuns = context.WithCancelCause(ctx)
	bg, stopBG := context.WithCancel(ctx)
	claims, stopClaims := context.WithCancel(ctx)
	d.stopBG, d.stopClaims = stopBG, stopClaims

	d.goBG(func() { d.heartbeatLoop(bg) })
	d.goBG(func() { d.leaseWatchLoop(bg) })
	d.goBG(func() { d.reaperLoop(bg) })
	d.startMaintenance(bg)
	if d.cfg.IdleExit > 0 {
		d.goBG(func() { d.idleLoop(bg) })
	}
	if ch := d.store.Wakeups(claims); ch != nil {
		d.goBG(func() {
			for lane := range ch {
				d.Wake(lane)
			}
		})
	}
	for _, lane := range d.cfg.Lanes {
		d.claimWG.Add(1)
		go func() {
			defer d.claimWG.Done()
			d.claimLoop(claims, lane)
		}()
	}
}

func (d *Daemon) goBG(fn func()) {
	d.bgWG.Add(1)
	go func() {
		defer d.bgWG.Done()
		fn()
	}()
}

// Stop shuts down in two stages: stop claiming and give in-flight runs the
// shutdown grace; then cancel them (a run before its action phase is
// released to the queue, one in or after it ends in error). Events are
// flushed. ctx bounds the whole stop.
func (d *Daemon) Stop(ctx context.Context) error {
	d.stopClaims()
	d.claimWG.Wait()
	d.log.Info("stopped claiming; waiting for in-flight runs", zap.Int("in_flight", d.InFlight()),
		zap.Duration("grace", d.cfg.ShutdownGrace))
	runsDone := make(chan struct{})
	go func() {
		d.runWG.Wait()
		close(runsDone)
	}()
	grace := time.NewTimer(d.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-runsDone:
	case <-grace.C:
		d.log.Warn("shutdown grace over; interrupting in-flight runs", zap.Int("in_flight", d.InFlight()))
		d.cancelRuns(errShutdown)
	case <-ctx.Done():
		d.cancelRuns(errShutdown)
	}
	<-runsDone
	d.cancelRuns(errShutdown)
	d.stopBG()
	d.bgWG.Wait()
	return d.writer.Stop(ctx)
}

// Idle is closed when IdleExit elapsed with nothing in flight and nothing claimed.
func (d *Daemon) Idle() <-chan struct{} { return d.idle }

// InFlight is the number of runs executing now.
func (d *Daemon) InFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running
}

// FirstClaim is when this daemon first claimed a run (zero before).
func (d *Daemon) FirstClaim() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.firstClaim
}

// Wake asks the claimer of lane (every lane for "" or an unknown lane) to
// claim now instead of waiting for its next poll.
func (d *Daemon) Wake(lane string) {
	if ch, ok := d.wake[lane]; ok {
		signal(ch)
		return
	}
	for _, ch := range d.wake {
		signal(ch)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Healthy reports whether heartbeats are succeeding (claiming pauses when not).
func (d *Daemon) Healthy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Since(d.lastHBOK) <= d.cfg.StaleAfter/2
}

func (d *Daemon) claimLoop(ctx context.Context, lane string) {
	interval := d.cfg.PollInterval
	for {
		n, full := d.claimOnce(ctx, lane)
		if n > 0 && !full {
			interval = d.cfg.PollInterval
			continue // more may be waiting
		}
		wait := interval
		if n > 0 {
			interval, wait = d.cfg.PollInterval, d.cfg.PollInterval
		} else {
			interval = min(interval*2, d.cfg.PollMaxInterval) // back off while idle
		}
		t := time.NewTimer(backoff.Jitter(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.wake[lane]:
			interval = d.cfg.PollInterval
		case <-t.C:
		}
		t.Stop()
	}
}

func (d *Daemon) claimOnce(ctx context.Context, lane string) (int, bool) {
	if ctx.Err() != nil || !d.Healthy() {
		return 0, false
	}
	d.mu.Lock()
	free := d.cfg.LaneConcurrency - d.perLane[lane]
	d.mu.Unlock()
	if free <= 0 {
		return 0, true
	}
	// A claim in flight when shutdown starts is allowed to complete, so its
	// runs are started (and then released) rather than left claimed by nobody.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	d.mu.Lock()
	token := d.claimTokens[lane]
	d.mu.Unlock()
	if token == "" {
		token = uuid.New()
	}
	runs, err := d.store.ClaimRuns(cctx, ClaimRequest{Worker: d.cfg.WorkerID, Lane: lane, Limit: free, Token: token,
		LeaseFor: d.cfg.StaleAfter})
	d.mu.Lock()
	if err != nil && !errors.Is(err, ErrInvalidInput) && !errors.Is(err, ErrPermission) {
		d.claimTokens[lane] = token // the claim may have committed: replay it next time
	} else {
		delete(d.claimTokens, lane)
	}
	d.mu.Unlock()
	if err != nil {
		d.metrics.StoreErrors.WithLabelValues(errorKind(err)).Inc()
		d.log.Warn("claim failed", zap.String("lane", lane), zap.Error(err))
		return 0, false
	}
	for _, r := range runs {
		d.startRun(r)
	}
	return len(runs), len(runs) >= free
}

func (d *Daemon) startRun(run *Run) {
	ctx, cancel := context.WithCancelCause(d.runBase)
	if run.TimeoutSeconds != nil && *run.TimeoutSeconds > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, time.Duration(*run.TimeoutSeconds)*time.Second, errRunTimeout)
		prev := cancel
		cancel = func(cause error) { prev(cause); stop() }
	}
	x := &execution{d: d, run: run, ctx: ctx, cancel: cancel, started: time.Now(), approved: make(chan struct{}),
		lease: Lease{RunID: run.ID, Worker: d.cfg.WorkerID, Attempt: run.Attempt}}
	x.emitter = d.writer.NewEmitter(ctx, run.ID, run.Attempt, run.NextSeq, d.cfg.ChattyRowsPerSecond, d.cfg.Redactor)
	x.rc = &RunContext{Run: run, Inputs: MergeInputs(run), emitter: x.emitter, store: d.store, worker: d.cfg.WorkerID,
		redact: d.cfg.Redactor, maxArtifact: d.cfg.ArtifactMaxBytes}
	if run.ApprovedAt != nil {
		x.approve(deref(run.ApprovedBy))
	}
	d.mu.Lock()
	old := d.inflight[run.ID]
	d.inflight[run.ID] = x
	d.running++
	d.perLane[run.Lane]++
	d.lastBusy = time.Now()
	if d.firstClaim.IsZero() {
		d.firstClaim = d.lastBusy
	}
	d.mu.Unlock()
	if old != nil {
		// The run was reaped and claimed again while an older attempt of it
		// is still unwinding here: that attempt holds no lease any more and
		// no heartbeat carries it now, so stop it and drop its rows now.
		d.log.Warn("run claimed again while an older attempt is still stopping; stopping that attempt",
			zap.String("run_id", run.ID), zap.Int("attempt", run.Attempt), zap.Int("old_attempt", old.lease.Attempt))
		d.writer.Forget(old.emitter.gen)
		old.cancel(errLeaseLost)
	}
	d.metrics.RunsClaimed.WithLabelValues(run.Lane).Inc()
	d.metrics.InFlight.WithLabelValues(run.Lane).Inc()
	d.runWG.Add(1)
	go func() {
		defer d.runWG.Done()
		defer func() {
			cancel(nil)
			d.mu.Lock()
			if d.inflight[run.ID] == x { // not when a newer attempt took the run's place
				delete(d.inflight, run.ID)
			}
			d.running--
			d.perLane[run.Lane]--
			d.lastBusy = time.Now()
			d.mu.Unlock()
			d.metrics.InFlight.WithLabelValues(run.Lane).Dec()
			d.Wake(run.Lane) // a slot is free, and the session's next run may be claimable
		}()
		x.execute()
	}()
}

func (d *Daemon) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.heartbeatOnce(ctx)
		}
	}
}

func (d *Daemon) heartbeatOnce(ctx context.Context) {
	d.mu.Lock()
	leases := make([]Lease, 0, len(d.inflight))
	// The answer is about the attempts sent, which are not always those
	// listed when it arrives (a run claimed again meanwhile): act on these.
	execs := make(map[string]*execution, len(d.inflight))
	for id, x := range d.inflight {
		leases = append(leases, x.lease)
		execs[id] = x
	}
	d.mu.Unlock()
	hctx, cancel := context.WithTimeout(ctx, max(d.cfg.HeartbeatInterval, time.Second))
	defer cancel()
	var states []LeaseState
	var err error
	sent := time.Now() // a lease is renewed as of when the heartbeat was sent, at best
	if len(leases) > 0 {
		states, err = d.store.Heartbeat(hctx, d.cfg.WorkerID, leases, d.cfg.StaleAfter)
	} else {
		err = d.store.Ping(hctx)
	}
	d.mu.Lock()
	d.lastHBTry = time.Now()
	if err == nil {
		d.lastHBOK = sent
	}
	lag := time.Since(d.lastHBOK)
	d.mu.Unlock()
	d.metrics.HeartbeatLag.Set(lag.Seconds())
	if err != nil {
		if ctx.Err() == nil {
			d.metrics.StoreErrors.WithLabelValues(errorKind(err)).Inc()
			d.log.Warn("heartbeat failed", zap.Int("runs", len(leases)), zap.Duration("since_last_ok", lag), zap.Error(err))
		}
		return
	}
	for _, s := range states {
		x := execs[s.RunID]
		if x == nil {
			continue
		}
		switch s.State {
		case LeaseCanceled:
			x.setCancelMessage(s.Message)
			x.cancel(errCanceledByOperator)
		case LeaseLost:
			d.writer.Forget(x.emitter.gen)
			x.cancel(errLeaseLost)
		default:
			if s.Approved {
				x.approve(s.ApprovedBy)
			}
		}
	}
}

// leasesRefused stops the runs whose rows the database refused: their
// attempts no longer hold the runs, so nothing more is written for them.
func (d *Daemon) leasesRefused(leases []Lease) {
	for _, l := range leases {
		d.mu.Lock()
		x := d.inflight[l.RunID]
		d.mu.Unlock()
		if x != nil && x.lease == l { // not a newer attempt of the run
			d.writer.Forget(x.emitter.gen)
			x.cancel(errLeaseLost)
		}
	}
}

// leaseWatchLoop stops every run once no heartbeat has succeeded for so long
// that the reaper may take their leases (stale-after less one heartbeat,
// counted from when the last good heartbeat was sent): a daemon cut off from
// the store must not go on acting for runs that another daemon may be running
// again. It runs apart from the heartbeat loop, whose calls may hang on a dead
// store. The runs' unwritten rows are dropped (the reaper writes the next
// event), and nothing more is written for them.
func (d *Daemon) leaseWatchLoop(ctx context.Context) {
	t := time.NewTicker(max(d.cfg.HeartbeatInterval/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		lag := time.Since(d.lastHBOK)
		var lost []*execution
		if lag >= d.cfg.StaleAfter-d.cfg.HeartbeatInterval {
			for _, x := range d.inflight {
				if x.ctx.Err() == nil {
					lost = append(lost, x)
				}
			}
		}
		d.mu.Unlock()
		if len(lost) == 0 {
			continue
		}
		d.log.Error("cut off from the store: stopping runs whose leases may be reaped",
			zap.Int("runs", len(lost)), zap.Duration("since_last_ok", lag))
		for _, x := range lost {
			d.writer.Forget(x.emitter.gen)
			x.cancel(errLeaseLost)
		}
	}
}

func (d *Daemon) reaperLoop(ctx context.Context) {
	for {
		t := time.NewTimer(backoff.Jitter(d.cfg.ReaperPeriod))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := d.store.ReapStale(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				d.metrics.StoreErrors.WithLabelValues(errorKind(err)).Inc()
				d.log.Warn("reap stale runs failed", zap.Error(err))
			}
			continue
		}
		for _, r := range res {
			d.metrics.RunsReaped.WithLabelValues(r.Action).Inc()
			d.log.Warn("reaped a stale run", zap.String("run_id", r.RunID), zap.String("action", r.Action),
				zap.String("phase", r.Phase), zap.String("lost_worker", r.Worker))
		}
		if len(res) > 0 {
			d.Wake("")
		}
	}
}

func (d *Daemon) idleLoop(ctx context.Context) {
	t := time.NewTicker(min(time.Second, d.cfg.IdleExit/2))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.mu.Lock()
			idle := d.running == 0 && time.Since(d.lastBusy) >= d.cfg.IdleExit
			d.mu.Unlock()
			if idle {
				close(d.idle)
				return
			}
		}
	}
}

// retryStore retries fn while it fails with a transient error, for up to
// half of stale-after (after that the reaper settles the run).
func (d *Daemon) retryStore(ctx context.Context, fn func(context.Context) (bool, error)) (bool, error) {
	deadline := time.Now().Add(d.cfg.StaleAfter / 2)
	wait := backoff.Policy{Min: 50 * time.Millisecond, Max: 2 * time.Second}
	for failures := 1; ; failures++ {
		ok, err := fn(ctx)
		if err == nil || !Retryable(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return ok, err
		}
		d.metrics.StoreErrors.WithLabelValues(errorKind(err)).Inc()
		if backoff.Sleep(ctx, wait.Delay(failures)) != nil {
			return false, context.Cause(ctx)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Alive reports whether the daemon's loops make progress (the heartbeat loop
// ran recently), for the systemd watchdog.
func (d *Daemon) Alive() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Since(d.lastHBTry) <= 3*d.cfg.HeartbeatInterval+5*time.Second
}
