package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// Retention is the `retention:` section: how long finished runs' rows and
// the audit trail are kept. Ages take Go durations plus days ("30d", "365d",
// "12h"); empty or "0" keeps everything, which is the default for every
// table. Queued and running runs are never pruned.
//
//	retention:
//	  run_events: 30d   # env OPSD_RETENTION_RUN_EVENTS
//	  runs: 365d        # env OPSD_RETENTION_RUNS (a run takes its rows with it)
//	  audit_log: 730d   # env OPSD_RETENTION_AUDIT_LOG (entries, whatever their run)
type Retention struct {
	RunEvents string `mapstructure:"run_events"` // env OPSD_RETENTION_RUN_EVENTS
	RunSteps  string `mapstructure:"run_steps"`  // env OPSD_RETENTION_RUN_STEPS
	Artifacts string `mapstructure:"artifacts"`  // env OPSD_RETENTION_ARTIFACTS
	Runs      string `mapstructure:"runs"`       // env OPSD_RETENTION_RUNS
	// AuditLog is the age of public.audit_log entries, independent of the
	// runs they name (env OPSD_RETENTION_AUDIT_LOG); at least 1d when set.
	AuditLog string `mapstructure:"audit_log"`
	// Interval between prune passes of the daemon; default 10m (env OPSD_RETENTION_INTERVAL).
	Interval string `mapstructure:"interval"`
	// Batch is the most rows one statement deletes per table; default 500 (env OPSD_RETENTION_BATCH).
	Batch int `mapstructure:"batch"`
}

// RetentionAges is Retention parsed; zero means keep.
type RetentionAges struct {
	RunEvents, RunSteps, Artifacts, Runs, AuditLog time.Duration
	Interval                                       time.Duration
	Batch                                          int
}

// retentionKeys are the keys of the `retention:` section; each has the env
// variable OPSD_RETENTION_<KEY>.
var retentionKeys = []string{"run_events", "run_steps", "artifacts", "runs", "audit_log", "interval", "batch"}

func bindRetentionEnv(v *viper.Viper) {
	for _, k := range retentionKeys {
		_ = v.BindEnv("retention."+k, "OPSD_RETENTION_"+strings.ToUpper(k))
	}
}

// Ages parses the section; errors name the key, the value and the form.
func (r Retention) Ages() (RetentionAges, error) {
	var out RetentionAges
	for _, f := range []struct {
		key string
		raw string
		dst *time.Duration
	}{{"run_events", r.RunEvents, &out.RunEvents}, {"run_steps", r.RunSteps, &out.RunSteps},
		{"artifacts", r.Artifacts, &out.Artifacts}, {"runs", r.Runs, &out.Runs}, {"audit_log", r.AuditLog, &out.AuditLog},
		{"interval", r.Interval, &out.Interval}} {
		d, err := ParseAge(f.raw)
		if err != nil {
			return out, fmt.Errorf("retention.%s (env OPSD_RETENTION_%s) = %q: %w", f.key, strings.ToUpper(f.key), f.raw, err)
		}
		*f.dst = d
	}
	if r.Batch < 0 || r.Batch > 100000 {
		return out, fmt.Errorf("retention.batch (env OPSD_RETENTION_BATCH) = %d: must be between 1 and 100000 (0 for the default 500)", r.Batch)
	}
	out.Batch = r.Batch
	if out.Runs > 0 && out.Runs < time.Hour {
		return out, fmt.Errorf("retention.runs (env OPSD_RETENTION_RUNS) = %q: must be at least 1h (or 0 to keep runs)", r.Runs)
	}
	// A slip such as 30m for 30d would wipe the audit trail within the hour.
	if out.AuditLog > 0 && out.AuditLog < 24*time.Hour {
		return out, fmt.Errorf("retention.audit_log (env OPSD_RETENTION_AUDIT_LOG) = %q: must be at least 1d (or 0 to keep the audit trail)", r.AuditLog)
	}
	return out, nil
}

// ParseAge reads a retention age: a Go duration ("720h", "90m") or a whole
// number of days ("30d"). Empty and "0" mean keep (zero).
func ParseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("want a whole number of days such as 30d, or a duration such as 12h")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 30d or 12h: %w", err)
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative")
	}
	return d, nil
}

// checkRetentionKey refuses a `retention.` key opsd does not know, so a typo
// (run_event for run_events) is an error, not a rule that silently keeps all.
func checkRetentionKey(key, file string) error {
	sub, ok := strings.CutPrefix(key, "retention.")
	if !ok {
		return nil
	}
	if slices.Contains(retentionKeys, sub) {
		return nil
	}
	return fmt.Errorf("--config %s: unknown option %q (retention takes %s)", file, key, strings.Join(retentionKeys, ", "))
}
