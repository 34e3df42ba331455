package executor

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the daemon's Prometheus metrics, on a registry of their own.
type Metrics struct {
	Registry           *prometheus.Registry
	RunsClaimed        *prometheus.CounterVec   // lane
	RunsFinished       *prometheus.CounterVec   // status, kind
	PhaseDuration      *prometheus.HistogramVec // phase
	EventRows          prometheus.Counter
	FlushLatency       prometheus.Histogram
	WriterBackpressure prometheus.Counter
	StoreErrors        *prometheus.CounterVec // kind
	HeartbeatLag       prometheus.Gauge
	InFlight           *prometheus.GaugeVec // lane
	RunsReaped         *prometheus.CounterVec
	WebhookWakeups     prometheus.Counter // POST /v1/wake requests accepted
}

// NewMetrics registers the metrics (and the Go and process collectors).
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		RunsClaimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsd_runs_claimed_total", Help: "Runs claimed, by lane."}, []string{"lane"}),
		RunsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsd_runs_finished_total", Help: "Runs finished, by status and kind."}, []string{"status", "kind"}),
		PhaseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "opsd_phase_duration_seconds", Help: "Phase durations.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"phase"}),
		EventRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opsd_event_rows_total", Help: "run_events rows written."}),
		FlushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "opsd_event_flush_latency_seconds", Help: "Time from an event being queued to its batch being stored.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		WriterBackpressure: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opsd_event_backpressure_total", Help: "Times a run waited because the event queue was full."}),
		StoreErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsd_store_errors_total", Help: "Store errors, by kind."}, []string{"kind"}),
		HeartbeatLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opsd_heartbeat_lag_seconds", Help: "Seconds since the last successful heartbeat."}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "opsd_runs_in_flight", Help: "Runs executing now, by lane."}, []string{"lane"}),
		RunsReaped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsd_runs_reaped_total", Help: "Stale runs the reaper acted on, by action."}, []string{"action"}),
		WebhookWakeups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opsd_webhook_wakeups_total", Help: "POST /v1/wake requests accepted (each wakes its lane, or every lane)."}),
	}
	r.MustRegister(m.RunsClaimed, m.RunsFinished, m.PhaseDuration, m.EventRows, m.FlushLatency,
		m.WriterBackpressure, m.StoreErrors, m.HeartbeatLag, m.InFlight, m.RunsReaped, m.WebhookWakeups,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// errorKind names a store error for metrics labels.
func errorKind(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{{ErrTransient, "transient"}, {ErrNotFound, "not_found"}, {ErrConflict, "conflict"},
		{ErrPermission, "permission"}, {ErrInvalidInput, "invalid_input"}} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}
