package executor_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// TestConfigLanes: a daemon claims only lanes the database accepts
// (runs_lane_guard: 1 to 32 letters, digits, _ or -).
func TestConfigLanes(t *testing.T) {
	for _, good := range [][]string{{"A", "B", "C", "D"}, {"lane_2", "blue-green", strings.Repeat("x", 32)}} {
		require.NoError(t, executor.Config{WorkerID: "w", Lanes: good}.Validate(), "%q", good)
	}
	for _, bad := range []string{"a b", "A.B", strings.Repeat("x", 33)} {
		require.ErrorContains(t, executor.Config{WorkerID: "w", Lanes: []string{"A", bad}}.Validate(),
			"is not a lane name: use 1 to 32 letters, digits, _ or -", "%q", bad)
	}
	require.ErrorContains(t, executor.Config{WorkerID: "w", Lanes: []string{""}}.Validate(), "empty lane name")
}
