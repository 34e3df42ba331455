package runbooks

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scenario is one end-to-end run of a kind against the fakes and a real
// database: setup changes the world, during acts while the run is in
// flight (cancel, approve), then the run's status and error_message are
// checked, and check looks at what it left behind.
type scenario struct {
	name   string
	run    runSpec
	setup  func(w *world)
	during func(w *world, id string)
	status string
	msg    string // substring of error_message
	check  func(w *world, id string)
}

func runScenarios(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			if sc.setup != nil {
				sc.setup(w)
			}
			w.start()
			id := w.submit(sc.run)
			if sc.during != nil {
				sc.during(w, id)
			}
			w.expect(id, sc.status, sc.msg)
			if sc.check != nil {
				sc.check(w, id)
			}
		})
	}
}

// approvalScenarios are the approval wait -> approve and approval timeout
// runs of run (which must need approval); untouched says nothing was done.
func approvalScenarios(run runSpec, approved, untouched func(w *world, id string)) []scenario {
	return []scenario{
		{
			name: "approval_wait_then_approve", run: run, status: "success",
			during: func(w *world, id string) {
				w.waitPhase(id, "approval")
				w.waitEvent(id, "waiting for approval")
				require.True(w.t, w.hasEvent(id, "Approve in the UI"))
				untouched(w, id) // nothing acted before the approval
				ok, err := w.store.ApproveRun(context.Background(), id, "tester@example.com")
				require.NoError(w.t, err)
				require.True(w.t, ok)
			},
			check: approved,
		},
		{
			name: "approval_timeout", run: run, status: "error", msg: "approval timed out",
			setup: func(w *world) { w.cfg.ApprovalTimeout = 300 * time.Millisecond },
			check: untouched,
		},
	}
}

// cancelInAction cancels the run once it is in its action phase, then
// waits for the canceled status.
func cancelInAction(w *world, id string) {
	w.waitPhase(id, "action")
	w.cancel(id)
}

// dryRunSkipped checks that the dry run said what it would have done.
func dryRunSkipped(w *world, id string, what string) {
	w.t.Helper()
	require.True(w.t, w.hasEvent(id, "dry run: action skipped; it would have done: "+what), "dry-run event")
}
