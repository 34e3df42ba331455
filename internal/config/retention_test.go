package config_test

import (
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
		"retention:\n  run_events: 30d\n  runs: 365d\n  run_steps: 720h\n  batch: 200\n")
	require.NoError(t, err)
	ages, err := c.Retention.Ages()
	require.NoError(t, err)
	day := 24 * time.Hour
	require.Equal(t, config.RetentionAges{RunEvents: 30 * day, Runs: 365 * day, RunSteps: 30 * day, Artifacts: 90 * day, Batch: 200}, ages)
}

func TestRetentionBadValuesNameTheSetting(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"retention:\n  run_events: 30 days\n", `retention.run_events (env OPSD_RETENTION_RUN_EVENTS) = "30 days"`},
		{"retention:\n  runs: 5m\n", `retention.runs (env OPSD_RETENTION_RUNS) = "5m": must be at least 1h`},
		{"retention:\n  artifacts: -3h\n", `retention.artifacts (env OPSD_RETENTION_ARTIFACTS) = "-3h": must not be negative`},
		{"retention:\n  batch: -1\n", `retention.batch (env OPSD_RETENTION_BATCH) = -1`},
		{"retention:\n  run_event: 30d\n", `unknown option "retention.run_event"`},
	} {
		_, err := load(t, nil, nil, tc.file)
		require.ErrorContains(t, err, tc.want, tc.file)
	}
}
