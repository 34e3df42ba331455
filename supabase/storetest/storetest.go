// Package storetest is the contract every store implementation must meet:
// the same suites run against pgstore.Store (a direct PostgreSQL connection)
// and reststore.Store (PostgREST), each on a fresh migrated database.
// RunDaemon covers executor.Store (what the daemon calls), RunOperator
// executor.OperatorStore (what the operator commands call).
//
// They exercise every method of both, the mapping of failures to the store's
// typed errors (not found, invalid input, conflict, permission), idempotent
// event batches under replay, concurrent use (run it under -race), the
// cancellation of a call in flight, claim tokens, lease fencing of
// heartbeat, phase, finish and release, the lane rule and the reaper; and,
// for backends that can simulate it, responses lost after commit.
//
// A backend's test wires it up:
//
//	func TestPGStore(t *testing.T) {
//		h := storetest.HarnessFunc(func(t *testing.T) *storetest.Env {
//			db := pgtest.NewDB(t)
//			s := ...open the store on db.URL...
//			t.Cleanup(s.Close)
//			return &storetest.Env{Store: s, DB: db.Pool}
//		})
//		storetest.RunDaemon(t, h)
//		storetest.RunOperator(t, h)
//	}
package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/uuid"
)

// Store is what the suites exercise: a backend implements both the daemon's
// store and the operator's, and each suite reads back through either to
// check what the other wrote.
type Store interface {
	executor.Store
	executor.OperatorStore
}

// Env is one store under test on its own fresh, migrated database.
type Env struct {
	// Store is the implementation under test, with the daemon's privileges.
	Store Store
	// DB is a superuser pool on the same database, to seed and inspect rows.
	DB *pgxpool.Pool

	// Anon, when set, is a store with the browser's privileges (the anon key,
	// or a connection as role anon). The suite checks it may read and submit
	// runs but cannot write events, artifacts or run state, or claim.
	Anon Store
	// LoseNextResponse, when set, makes the backend execute and commit the
	// next request for op and then drop its response, as a network failure
	// after commit does. op is the REST path under /rest/v1, e.g.
	// "rpc/claim_run" or "run_events". Only a REST backend can do this.
	LoseNextResponse func(op string)
}

// Harness opens a fresh Env per test; cleanup is registered on t.
type Harness interface {
	Open(t *testing.T) *Env
}

// HarnessFunc adapts a function to Harness.
type HarnessFunc func(t *testing.T) *Env

// Open calls f.
func (f HarnessFunc) Open(t *testing.T) *Env { return f(t) }

// contractTest is one area of a suite.
type contractTest struct {
	name string
	fn   func(*testing.T, *fixture)
}

// RunDaemon runs the contract of executor.Store, one parallel subtest per
// area, each on a fresh Env.
func RunDaemon(t *testing.T, h Harness) {
	run(t, h, []contractTest{
		{"Templates", testTemplates},
		{"SpecDocs", testSpecDocs},
		{"EventsAndArtifacts", testEventsAndArtifacts},
		{"EventBatchReplay", testEventBatchReplay},
		{"Steps", testSteps},
		{"UnstorableText", testUnstorableText},
		{"BatchedPhases", testBatchedPhases},
		{"BatchedFinishes", testBatchedFinishes},
		{"ClaimHeartbeatFinish", testClaimHeartbeatFinish},
		{"ClaimToken", testClaimToken},
		{"LaneRule", testLaneRule},
		{"ReleaseAndReap", testReleaseAndReap},
		{"ErrorMapping", testErrorMapping},
		{"Permission", testPermission},
		{"ConcurrentUse", testConcurrentUse},
		{"CancelInFlight", testCancelInFlight},
		{"SchemaPingWakeups", testSchemaPingWakeups},
		{"LostResponses", testLostResponses},
	})
}

// RunOperator runs the contract of executor.OperatorStore, one parallel
// subtest per area, each on a fresh Env.
func RunOperator(t *testing.T, h Harness) {
	run(t, h, []contractTest{
		{"SubmitGetList", testSubmitGetList},
		{"CancelAndApprove", testCancelAndApprove},
		{"OperatorErrorMapping", testOperatorErrorMapping},
	})
}

func run(t *testing.T, h Harness, tests []contractTest) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := h.Open(t)
			require.NotNil(t, env.Store, "harness gave no store")
			require.NotNil(t, env.DB, "harness gave no superuser pool")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			t.Cleanup(cancel)
			tc.fn(t, &fixture{t: t, ctx: ctx, env: env, st: env.Store, db: env.DB})
		})
	}
}

// fixture is one test's Env plus seeding and inspection helpers.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	env  *Env
	st   Store
	db   *pgxpool.Pool
	runs atomic.Int64 // seeded runs so far, to space their created_at
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	_, err := f.db.Exec(f.ctx, sql, args...)
	require.NoError(f.t, err, sql)
}

func (f *fixture) count(sql string, args ...any) int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.db.QueryRow(f.ctx, sql, args...).Scan(&n), sql)
	return n
}

func (f *fixture) text(sql string, args ...any) *string {
	f.t.Helper()
	var s *string
	require.NoError(f.t, f.db.QueryRow(f.ctx, sql, args...).Scan(&s), sql)
	return s
}

// seedSession inserts a session and returns its id.
func (f *fixture) seedSession() string {
	f.t.Helper()
	var id string
	require.NoError(f.t, f.db.QueryRow(f.ctx, `INSERT INTO public.sessions (title) VALUES ('storetest') RETURNING id::text`).Scan(&id))
	return id
}

// seedRun inserts a queued run in lane (and session, when not empty). Runs
// seeded later have a later created_at, so claim order is deterministic.
func (f *fixture) seedRun(lane, session string) string {
	f.t.Helper()
	n := f.runs.Add(1)
	var sess *string
	if session != "" {
		sess = &session
	}
	var id string
	require.NoError(f.t, f.db.QueryRow(f.ctx, `
		INSERT INTO public.runs (env, kind, lane, session_id, intent, created_at)
		VALUES ('dev', 'healthcheck', $1, $2::uuid, $3, now() - interval '1 hour' + make_interval(secs => $4))
		RETURNING id::text`, lane, sess, fmt.Sprintf("seeded %d", n), n).Scan(&id))
	return id
}

// claim claims exactly want runs of lane for worker.
func (f *fixture) claim(worker, lane string, limit, want int) []*executor.Run {
	f.t.Helper()
	runs, err := f.st.ClaimRuns(f.ctx, executor.ClaimRequest{Worker: worker, Lane: lane, Limit: limit, Token: uuid.New()})
	require.NoError(f.t, err)
	require.Len(f.t, runs, want, "claimed runs of lane %s", lane)
	return runs
}

func (f *fixture) run(id string) *executor.Run {
	f.t.Helper()
	r, err := f.st.GetRun(f.ctx, id)
	require.NoError(f.t, err)
	return r
}

// seedClaimed seeds a run in a lane of its own and claims it for worker
// w1: rows are stored only for runs in flight under their writer's lease.
func (f *fixture) seedClaimed() (string, executor.Lease) {
	f.t.Helper()
	lane := fmt.Sprintf("L%d", f.runs.Load()+1)
	id := f.seedRun(lane, "")
	r := f.claim("w1", lane, 1, 1)[0]
	require.Equal(f.t, id, r.ID)
	return id, lease(r)
}

// appendRows stores events and steps under l (each row carries its attempt)
// and fails the test when the store refused the lease.
func (f *fixture) appendRows(l executor.Lease, events []executor.Event, steps []executor.Step) error {
	f.t.Helper()
	for i := range events {
		events[i].Attempt = l.Attempt
	}
	for i := range steps {
		steps[i].Attempt = l.Attempt
	}
	refused, err := f.st.AppendRows(f.ctx, l.Worker, executor.Rows{Events: events, Steps: steps})
	if err == nil {
		require.Empty(f.t, refused, "no lease refused")
	}
	return err
}

func lease(r *executor.Run) executor.Lease {
	return executor.Lease{RunID: r.ID, Worker: *r.ClaimedBy, Attempt: r.Attempt}
}

// heartbeat sends one heartbeat and indexes the answers by run id.
func (f *fixture) heartbeat(worker string, leases []executor.Lease) map[string]executor.LeaseState {
	f.t.Helper()
	got, err := f.st.Heartbeat(f.ctx, worker, leases, 30*time.Second)
	require.NoError(f.t, err)
	require.Len(f.t, got, len(leases), "one state per lease")
	m := make(map[string]executor.LeaseState, len(got))
	for _, s := range got {
		m[s.RunID] = s
	}
	return m
}

// requireKind checks err is a *executor.StoreError of kind.
func requireKind(t *testing.T, err error, kind error, what string) {
	t.Helper()
	require.Error(t, err, what)
	assert.ErrorIs(t, err, kind, "%s: %v", what, err)
	var se *executor.StoreError
	if assert.ErrorAs(t, err, &se, "%s: not a *executor.StoreError: %v", what, err) {
		assert.NotEmpty(t, se.Op, "%s: StoreError.Op", what)
	}
}

func strp(s string) *string { return &s }

func intp(i int) *int { return &i }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
