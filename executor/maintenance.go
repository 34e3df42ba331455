package executor

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/internal/backoff"
)

// MaintenanceConfig is the daemon's schedules, retention and queue-gauge
// work. Every daemon runs it; the database coordinates them (a unique index
// per schedule tick, SKIP LOCKED, a prune lease).
type MaintenanceConfig struct {
	// SchedulerInterval is how often due schedules are enqueued; default 1s,
	// negative disables the scheduler in this daemon.
	SchedulerInterval time.Duration
	// Retention ages; zero keeps everything (the default).
	Retention Retention
	// PruneInterval is how often a retention pass starts; default 10m.
	PruneInterval time.Duration
	// PruneBatch bounds the rows per table one statement deletes; default 500.
	PruneBatch int
	// PrunePause is the pause between batches of a pass; default 1s.
	PrunePause time.Duration
	// StatsInterval is how often the queue gauges are read; default 15s,
	// negative disables them.
	StatsInterval time.Duration
}

func (c *MaintenanceConfig) defaults() {
	if c.SchedulerInterval == 0 {
		c.SchedulerInterval = time.Second
	}
	setDefault(&c.PruneInterval, 10*time.Minute)
	setDefault(&c.PruneBatch, 500)
	setDefault(&c.PrunePause, time.Second)
	if c.StatsInterval == 0 {
		c.StatsInterval = 15 * time.Second
	}
}

// opsMetrics are the maintenance loops' metrics.
type opsMetrics struct {
	ScheduledRuns    prometheus.Counter
	ScheduleSkipped  prometheus.Counter
	ScheduleFailed   prometheus.Counter
	PrunedRows       *prometheus.CounterVec // table
	QueueOldest      prometheus.Gauge
	QueueDepth       prometheus.Gauge
	AwaitingApproval prometheus.Gauge
	ApprovalOldest   prometheus.Gauge
}

func newOpsMetrics(r *prometheus.Registry) *opsMetrics {
	m := &opsMetrics{
		ScheduledRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opsd_schedule_runs_enqueued_total", Help: "Runs this daemon enqueued for schedules."}),
		ScheduleSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opsd_schedule_ticks_skipped_total", Help: "Schedule ticks skipped because the previous run was still in flight."}),
		ScheduleFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opsd_schedule_ticks_failed_total", Help: "Schedule ticks that could not be enqueued (audit_log schedule.failed says why)."}),
		PrunedRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsd_pruned_rows_total", Help: "Rows deleted by retention, by table."}, []string{"table"}),
		QueueOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opsd_queue_oldest_seconds", Help: "Age of the oldest queued run."}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opsd_queue_depth", Help: "Queued runs, all lanes."}),
		AwaitingApproval: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opsd_runs_awaiting_approval", Help: "Runs waiting for an approval before their action phase."}),
		ApprovalOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opsd_approval_oldest_seconds", Help: "Age of the oldest run waiting for an approval."}),
	}
	register := func(c prometheus.Collector) prometheus.Collector {
		if err := r.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return are.ExistingCollector // a second daemon sharing the registry
			}
			panic(err)
		}
		return c
	}
	m.ScheduledRuns = register(m.ScheduledRuns).(prometheus.Counter)
	m.ScheduleSkipped = register(m.ScheduleSkipped).(prometheus.Counter)
	m.ScheduleFailed = register(m.ScheduleFailed).(prometheus.Counter)
	m.PrunedRows = register(m.PrunedRows).(*prometheus.CounterVec)
	m.QueueOldest = register(m.QueueOldest).(prometheus.Gauge)
	m.QueueDepth = register(m.QueueDepth).(prometheus.Gauge)
	m.AwaitingApproval = register(m.AwaitingApproval).(prometheus.Gauge)
	m.ApprovalOldest = register(m.ApprovalOldest).(prometheus.Gauge)
	return m
}

// startMaintenance starts the scheduler, pruner and queue-gauge loops when
// the store supports them.
func (d *Daemon) startMaintenance(ctx context.Context) {
	ops, ok := d.store.(Operations)
	if !ok {
		return
	}
	c := d.cfg.Maintenance
	c.defaults()
	m := newOpsMetrics(d.metrics.Registry)
	if c.SchedulerInterval > 0 {
		d.goBG(func() { d.schedulerLoop(ctx, ops, c, m) })
	}
	if c.Retention.Enabled() {
		d.goBG(func() { d.pruneLoop(ctx, ops, c, m) })
	}
	if c.StatsInterval > 0 {
		d.goBG(func() { d.statsLoop(ctx, ops, c, m) })
	}
}

// every calls fn every period (jittered) until ctx ends, each pass bounded
// by a timeout; fn's errors are counted and logged, never fatal.
func (d *Daemon) every(ctx context.Context, period time.Duration, what string, fn func(context.Context) error) {
	for {
		t := time.NewTimer(backoff.Jitter(period))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(30*time.Second, period))
		err := fn(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			d.metrics.StoreErrors.WithLabelValues(errorKind(err)).Inc()
			d.log.Warn(what+" failed", zap.Error(err))
		}
	}
}

func (d *Daemon) schedulerLoop(ctx context.Context, ops Operations, c MaintenanceConfig, m *opsMetrics) {
	d.every(ctx, c.SchedulerInterval, "enqueue due schedules", func(ctx context.Context) error {
		res, err := ops.EnqueueDueSchedules(ctx, 50)
		if err != nil {
			return err
		}
		m.ScheduledRuns.Add(float64(res.Enqueued))
		m.ScheduleSkipped.Add(float64(res.Skipped))
		m.ScheduleFailed.Add(float64(res.Failed))
		if res.Failed > 0 {
			// The others were still enqueued; each failure is in the audit trail.
			d.log.Warn("schedule ticks could not be enqueued; see opsd audit (action schedule.failed)", zap.Int("ticks", res.Failed))
		}
		if res.Enqueued > 0 {
			d.log.Info("enqueued scheduled runs", zap.Int("runs", res.Enqueued))
			d.Wake("")
		}
		return nil
	})
}

func (d *Daemon) pruneLoop(ctx context.Context, ops Operations, c MaintenanceConfig, m *opsMetrics) {
	// A pass may outlast every's per-pass timeout: PrunePass bounds each
	// batch instead, and the daemon's context stops the pass.
	d.every(ctx, c.PruneInterval, "prune", func(context.Context) error {
		total, err := PrunePass(ctx, ops, PruneRequest{Worker: d.cfg.WorkerID, Retention: c.Retention, Batch: c.PruneBatch},
			c.PrunePause, func(r PruneResult) {
				for _, tc := range r.Tables() {
					m.PrunedRows.WithLabelValues(tc.Table).Add(float64(tc.Rows))
				}
			})
		if total.Total() > 0 {
			var fields []zap.Field
			for _, tc := range total.Tables() {
				fields = append(fields, zap.Int64(tc.Table, tc.Rows))
			}
			d.log.Info("pruned old rows", fields...)
		}
		return err
	})
}

func (d *Daemon) statsLoop(ctx context.Context, ops Operations, c MaintenanceConfig, m *opsMetrics) {
	d.every(ctx, c.StatsInterval, "read queue stats", func(ctx context.Context) error {
		s, err := ops.QueueStats(ctx)
		if err != nil {
			return err
		}
		m.QueueDepth.Set(float64(s.Queued))
		m.QueueOldest.Set(s.OldestQueuedSeconds)
		m.AwaitingApproval.Set(float64(s.AwaitingApproval))
		m.ApprovalOldest.Set(s.OldestApprovalSeconds)
		return nil
	})
}

// pruneBatchTimeout bounds one retention batch.
const pruneBatchTimeout = 2 * time.Minute

// PrunePass runs retention batches until one deletes nothing, another
// daemon holds the prune lease, or ctx ends, pausing between batches. A dry
// run is a single counting call. onBatch sees each batch's result.
func PrunePass(ctx context.Context, ops Operations, req PruneRequest, pause time.Duration,
	onBatch func(PruneResult)) (PruneResult, error) {
	var total PruneResult
	total.DryRun = req.DryRun
	for {
		bctx, cancel := context.WithTimeout(ctx, pruneBatchTimeout)
		r, err := ops.Prune(bctx, req)
		cancel()
		if err != nil {
			return total, err
		}
		if r.Busy != "" {
			total.Busy = r.Busy
			return total, nil
		}
		if onBatch != nil {
			onBatch(r)
		}
		total = total.Add(r)
		if req.DryRun || r.Total() == 0 {
			return total, nil
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(pause):
		}
	}
}
