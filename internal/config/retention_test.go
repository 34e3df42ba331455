package config_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/config"
)

func TestRetentionDefaultsKeepEverything(t *testing.T) {
	c, err := load(t, nil, nil, "")
	require.NoError(t, err)
	ages, err := c.Retention.Ages()
	require.NoError(t, err)
	require.Equal(t, config.RetentionAges{}, ages)
}

func TestRetentionFromFileAndEnv(t *testing.T) {
	c, err := load(t, nil, map[string]string{"OPSD_RETENTION_ARTIFACTS": "90d"},
		"retention:\n  run_events: 30d\n  runs: 365d\n  run_steps: 720h\n  audit_log: 730d\n  batch: 200\n")
	require.NoError(t, err)
	ages, err := c.Retention.Ages()
	require.NoError(t, err)
	day := 24 * time.Hour
	require.Equal(t, config.RetentionAges{RunEvents: 30 * day, Runs: 365 * day, RunSteps: 30 * day, Artifacts: 90 * day,
		AuditLog: 730 * day, Batch: 200}, ages)
}

// TestRetentionAuditLog: the audit trail's age comes from the file or the
// environment (which wins), and is kept when unset.
func TestRetentionAuditLog(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		env  map[string]string
		file string
		want time.Duration
	}{
		{nil, "retention:\n  audit_log: 400d\n", 400 * day},
		{map[string]string{"OPSD_RETENTION_AUDIT_LOG": "365d"}, "", 365 * day},
		{map[string]string{"OPSD_RETENTION_AUDIT_LOG": "48h"}, "retention:\n  audit_log: 400d\n", 2 * day},
		{map[string]string{"OPSD_RETENTION_AUDIT_LOG": "0"}, "retention:\n  run_events: 30d\n", 0},
		{nil, "retention:\n  runs: 365d\n", 0},
	} {
		c, err := load(t, nil, tc.env, tc.file)
		require.NoError(t, err, tc.file)
		ages, err := c.Retention.Ages()
		require.NoError(t, err)
		require.Equal(t, tc.want, ages.AuditLog, "%v %q", tc.env, tc.file)
	}
	_, err := load(t, nil, map[string]string{"OPSD_RETENTION_AUDIT_LOG": "a year"}, "")
	require.ErrorContains(t, err, `retention.audit_log (env OPSD_RETENTION_AUDIT_LOG) = "a year"`)
}

func TestRetentionBadValuesNameTheSetting(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"retention:\n  run_events: 30 days\n", `retention.run_events (env OPSD_RETENTION_RUN_EVENTS) = "30 days"`},
		{"retention:\n  runs: 5m\n", `retention.runs (env OPSD_RETENTION_RUNS) = "5m": must be at least 1h`},
		{"retention:\n  artifacts: -3h\n", `retention.artifacts (env OPSD_RETENTION_ARTIFACTS) = "-3h": must not be negative`},
		{"retention:\n  batch: -1\n", `retention.batch (env OPSD_RETENTION_BATCH) = -1`},
		{"retention:\n  run_event: 30d\n", `unknown option "retention.run_event"`},
		{"retention:\n  audit: 30d\n", `(retention takes run_events, run_steps, artifacts, runs, audit_log, interval, batch)`},
		{"retention:\n  audit_log: 30 days\n", `retention.audit_log (env OPSD_RETENTION_AUDIT_LOG) = "30 days"`},
		{"retention:\n  audit_log: 30m\n", `retention.audit_log (env OPSD_RETENTION_AUDIT_LOG) = "30m": must be at least 1d`},
		{"retention:\n  audit_log: -1h\n", `retention.audit_log (env OPSD_RETENTION_AUDIT_LOG) = "-1h": must not be negative`},
	} {
		_, err := load(t, nil, nil, tc.file)
		require.ErrorContains(t, err, tc.want, tc.file)
	}
}

func TestRetries(t *testing.T) {
	c, err := load(t, nil, nil, "retries:\n  healthcheck: {max_attempts: 3, backoff: 10s}\n  deploy: {max_attempts: 2}\n")
	require.NoError(t, err)
	require.Equal(t, 3, c.Retries["healthcheck"].MaxAttempts)
	d, err := c.Retries["deploy"].RetryBackoff()
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, d)
	for _, tc := range []struct{ file, want string }{
		{"retries:\n  deploi: {max_attempts: 2}\n", "retries.deploi: not a run kind"},
		{"retries:\n  spec: {max_attempts: 0}\n", "retries.spec.max_attempts = 0: must be between 1 and 10"},
		{"retries:\n  spec: {max_attempts: 2, backoff: soon}\n", `retries.spec.backoff = "soon"`},
	} {
		_, err := load(t, nil, nil, tc.file)
		require.ErrorContains(t, err, tc.want, tc.file)
	}
}

// FuzzParseAge: ParseAge never panics, never returns a negative age, and
// accepts what it prints back for whole days.
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"", "0", "30d", "365d", "12h", "1h30m", "-1h", "d", "99999999999d", " 7d "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := config.ParseAge(s)
		if err != nil {
			return
		}
		require.GreaterOrEqual(t, d, time.Duration(0))
		if d%(24*time.Hour) == 0 && d > 0 {
			again, err := config.ParseAge(fmt.Sprintf("%dd", d/(24*time.Hour)))
			if d/(24*time.Hour) <= 100*365 {
				require.NoError(t, err)
				require.Equal(t, d, again)
			}
		}
	})
}
