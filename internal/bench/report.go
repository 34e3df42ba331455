package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Report is the outcome of one `opsd bench`.
type Report struct {
	Started   time.Time         `json:"started"`
	Quick     bool              `json:"quick"`
	Machine   Machine           `json:"machine"`
	Options   map[string]any    `json:"options"`
	Scenarios []*ScenarioResult `json:"scenarios"`
}

// Machine describes where the numbers were measured.
type Machine struct {
	CPUs       int               `json:"cpus"`
	GOOS       string            `json:"goos"`
	GOARCH     string            `json:"goarch"`
	GoVersion  string            `json:"go_version"`
	PostgreSQL string            `json:"postgresql"`
	PGSettings map[string]string `json:"pg_settings"`
	LoadBefore string            `json:"load_before"` // /proc/loadavg
	LoadAfter  string            `json:"load_after"`
}

// ScenarioResult is one scenario's rows, counts and notes.
type ScenarioResult struct {
	Name               string           `json:"name"`
	Seconds            float64          `json:"seconds"`
	ProcessCPUSeconds  float64          `json:"process_cpu_seconds"`            // user+sys of this process (daemons and clients)
	PostgresCPUSeconds float64          `json:"postgres_cpu_seconds,omitempty"` // of the server, when it runs on this machine
	Rows               []Row            `json:"rows"`
	Counts             map[string]int64 `json:"counts"` // for checking the run: samples, runs, lines lost, ...
	Notes              []string         `json:"notes,omitempty"`
	Error              string           `json:"error,omitempty"`

	opsd, baseline bool // which sides to measure
}

// Row is one measured quantity: opsd's value, the original design's value
// on the same machine in the same run, and the target.
type Row struct {
	Metric   string   `json:"metric"`
	Unit     string   `json:"unit"`
	Value    *float64 `json:"value,omitempty"`    // opsd
	Baseline *float64 `json:"baseline,omitempty"` // the original design
	Lower    bool     `json:"lower_is_better"`
	Target   *float64 `json:"target,omitempty"` // a bound: at most (Lower) or at least
	Met      *bool    `json:"met,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"` // how many times better opsd is than the baseline
}

func (r *ScenarioResult) row(metric, unit string, lower bool) *Row {
	for i := range r.Rows {
		if r.Rows[i].Metric == metric {
			return &r.Rows[i]
		}
	}
	r.Rows = append(r.Rows, Row{Metric: metric, Unit: unit, Lower: lower})
	return &r.Rows[len(r.Rows)-1]
}

// set records opsd's value of a metric (and its target, if any).
func (r *ScenarioResult) set(metric, unit string, lower bool, v float64, target ...float64) {
	row := r.row(metric, unit, lower)
	row.Value = &v
	if len(target) > 0 {
		row.Target = &target[0]
	}
}

// setBaseline records the original design's value of a metric.
func (r *ScenarioResult) setBaseline(metric, unit string, lower bool, v float64) {
	r.row(metric, unit, lower).Baseline = &v
}

func (r *ScenarioResult) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile is the nearest-rank p-quantile (0 < p <= 1) of sorted ds.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latencies records p50, p95 and p99 of ds as rows "<name> p50" ... (ms).
func (r *ScenarioResult) latencies(name string, ds []time.Duration, baseline bool, targets map[string]float64) {
	s := slices.Clone(ds)
	slices.Sort(s)
	for _, q := range []struct {
		label string
		p     float64
	}{{"p50", 0.50}, {"p95", 0.95}, {"p99", 0.99}} {
		metric := name + " " + q.label
		v := ms(percentile(s, q.p))
		if baseline {
			r.setBaseline(metric, "ms", true, v)
			continue
		}
		if t, ok := targets[q.label]; ok {
			r.set(metric, "ms", true, v, t)
		} else {
			r.set(metric, "ms", true, v)
		}
	}
}

func newReport(ctx context.Context, adminURL string, o Options) *Report {
	rep := &Report{Started: time.Now().UTC(), Quick: o.Quick, Machine: Machine{
		CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(),
		PGSettings: map[string]string{}, LoadBefore: loadavg()}}
	rep.Options = map[string]any{"samples": o.Samples, "poll_interval": o.PollInterval.String(), "runs": o.Runs,
		"sessions": o.Sessions, "no_sessions": o.NoSessions, "daemons": o.Daemons, "lane_concurrency": o.LaneConcurrency,
		"lines": o.Lines, "events": o.Events, "rest_events": o.RESTEvents, "in_flight": o.InFlight,
		"baseline_samples": o.BaselineSamples, "baseline_duration": o.BaselineDuration.String(),
		"baseline_events": o.BaselineEvents, "scenarios": o.Scenarios}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return rep
	}
	defer conn.Close(ctx)
	_ = conn.QueryRow(ctx, `SELECT version()`).Scan(&rep.Machine.PostgreSQL)
	for _, s := range []string{"fsync", "synchronous_commit", "shared_buffers", "max_connections"} {
		var v string
		if conn.QueryRow(ctx, `SELECT current_setting($1)`, s).Scan(&v) == nil {
			rep.Machine.PGSettings[s] = v
		}
	}
	return rep
}

// finish computes ratios and target verdicts.
func (rep *Report) finish() {
	rep.Machine.LoadAfter = loadavg()
	for _, s := range rep.Scenarios {
		for i := range s.Rows {
			r := &s.Rows[i]
			if r.Value != nil && r.Target != nil {
				met := *r.Value <= *r.Target
				if !r.Lower {
					met = *r.Value >= *r.Target
				}
				r.Met = &met
			}
			if r.Value != nil && r.Baseline != nil && *r.Value > 0 && *r.Baseline > 0 {
				ratio := *r.Value / *r.Baseline
				if r.Lower {
					ratio = *r.Baseline / *r.Value
				}
				r.Ratio = &ratio
			}
		}
	}
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteMarkdown writes the results table, then notes and errors.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	mode := "full"
	if rep.Quick {
		mode = "quick (smoke run: sizes too small for the numbers to mean much)"
	}
	fmt.Fprintf(&b, "opsd bench, %s, %s: %d CPUs, %s/%s, %s; load %s -> %s\n", mode, rep.Started.Format(time.RFC3339),
		rep.Machine.CPUs, rep.Machine.GOOS, rep.Machine.GOARCH, rep.Machine.GoVersion, rep.Machine.LoadBefore, rep.Machine.LoadAfter)
	if rep.Machine.PostgreSQL != "" {
		fmt.Fprintf(&b, "%s; fsync=%s synchronous_commit=%s\n", firstWords(rep.Machine.PostgreSQL, 2),
			rep.Machine.PGSettings["fsync"], rep.Machine.PGSettings["synchronous_commit"])
	}
	b.WriteString("\n| scenario | metric | opsd | original design | opsd vs original | target | status |\n")
	b.WriteString("|---|---|---:|---:|---:|---|---|\n")
	for _, s := range rep.Scenarios {
		for _, r := range s.Rows {
			status := ""
			if r.Met != nil {
				status = map[bool]string{true: "met", false: "**missed**"}[*r.Met]
			}
			target := ""
			if r.Target != nil {
				target = map[bool]string{true: "<= ", false: ">= "}[r.Lower] + num(*r.Target) + " " + r.Unit
			}
			ratio := ""
			if r.Ratio != nil {
				ratio = fmt.Sprintf("%s x better", num(*r.Ratio))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", s.Name, r.Metric,
				withUnit(r.Value, r.Unit), withUnit(r.Baseline, r.Unit), ratio, target, status)
		}
	}
	for _, s := range rep.Scenarios {
		if s.Error != "" {
			fmt.Fprintf(&b, "\n**%s failed:** %s\n", s.Name, s.Error)
		}
		if len(s.Notes) > 0 {
			fmt.Fprintf(&b, "\n%s (%.1fs; CPU: %.1fs in this process, %s in PostgreSQL):\n", s.Name, s.Seconds, s.ProcessCPUSeconds,
				map[bool]string{true: fmt.Sprintf("%.1fs", s.PostgresCPUSeconds), false: "unknown"}[s.PostgresCPUSeconds > 0])
			for _, n := range s.Notes {
				fmt.Fprintf(&b, "- %s\n", n)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func withUnit(v *float64, unit string) string {
	if v == nil {
		return ""
	}
	return num(*v) + " " + unit
}

// num prints 3 significant digits, with thousands separators when large.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 1000:
		return thousands(int64(math.Round(v)))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(n, len(f))], " ")
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return firstWords(string(b), 3)
}
