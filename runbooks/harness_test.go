package runbooks

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/digitalocean/dotest"
	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
	"github.com/opscontrolroom/opsd/adapters/supabaseadapter/supabasetest"
	"github.com/opscontrolroom/opsd/adapters/vercel/verceltest"
	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
)

func TestMain(m *testing.M) {
	// A fuzzing worker runs only the fuzz target, which needs no database:
	// starting a PostgreSQL cluster per worker would stall the fuzzer.
	if slices.ContainsFunc(os.Args, func(a string) bool { return strings.HasPrefix(a, "-test.fuzzworker") }) {
		os.Exit(m.Run())
	}
	pgtest.Main(m)
}

const testRepo = "acme/web"

// world is one test's database, store, provider fakes and daemon.
type world struct {
	t       *testing.T
	db      *pgtest.DB
	store   *pgstore.Store
	vercel  *verceltest.Server
	project verceltest.Project
	gh      *githubtest.Server
	mainSHA string
	do      *dotest.Server
	sb      *supabasetest.Server
	deps    Deps
	cfg     executor.Config
}

var workerSeq atomic.Int64

// newWorld seeds every fake with a healthy estate: Vercel project web
// (linked to acme/web) with a READY production deployment, repository
// acme/web with green CI and a migrations workflow, droplet web-1 tagged
// web, and a healthy Supabase project for every env.
func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, db: pgtest.NewDB(t)}
	s, err := pgstore.New(context.Background(), pgstore.Config{URL: w.db.URL})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	w.store = s

	w.vercel = verceltest.NewServer(t)
	w.project = w.vercel.AddProject(verceltest.Project{Name: "web", Org: "acme", Repo: "web", Framework: "nextjs"})
	w.vercel.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: w.project.ID, Target: "production",
		Meta: map[string]string{"githubCommitRef": "main", "githubCommitSha": strings.Repeat("a", 40)}})

	w.gh = githubtest.New(t)
	w.mainSHA = w.gh.AddRepo(testRepo, "main")
	w.gh.AddWorkflow(testRepo, githubtest.Workflow{File: "migrate.yml", Name: "Migrate"})
	w.gh.AddWorkflow(testRepo, githubtest.Workflow{File: "ci.yml", Name: "CI"})
	w.gh.AddRun(testRepo, githubtest.Run{Workflow: "ci.yml", Branch: "main"})
	w.gh.AddCheckRun(testRepo, w.mainSHA, "build", "completed", "success")

	w.do = dotest.NewServer(t)
	w.do.AddDroplet(dotest.Droplet{Name: "web-1", Tags: []string{"web"}, PublicIPv4: "203.0.113.10"})

	w.sb = supabasetest.New(t)
	target := SupabaseTarget{URL: w.sb.URL, Key: w.sb.Key}
	w.deps = Deps{
		Store: s,
		Integrations: Integrations{
			Vercel:       VercelOptions{Token: verceltest.DefaultToken, APIURL: w.vercel.URL, Project: "web"},
			GitHub:       GitHubOptions{Token: githubtest.DefaultToken, APIURL: w.gh.URL, Repo: testRepo, MigrationsWorkflow: "migrate.yml"},
			DigitalOcean: DigitalOceanOptions{Token: dotest.DefaultToken, APIURL: w.do.URL, Tag: "web"},
			Supabase:     map[string]SupabaseTarget{"prod": target, "staging": target, "dev": target},
			URLAllowlist: []string{"127.0.0.1"},
		},
		// The schema_sync scenarios compare dev with staging.
		Policy: Policy{Envs: map[string]Allowlist{"dev": {Databases: []string{"staging"}}}},
		HTTP:   adapters.Options{Timeout: 5 * time.Second, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		Poll:   10 * time.Millisecond,
	}
	w.cfg = executor.Config{
		WorkerID: fmt.Sprintf("rb-%d", workerSeq.Add(1)), LaneConcurrency: 4,
		HeartbeatInterval: 200 * time.Millisecond, StaleAfter: 5 * time.Second, ReaperPeriod: time.Second,
		PollInterval: 20 * time.Millisecond, PollMaxInterval: 100 * time.Millisecond, ShutdownGrace: 5 * time.Second,
		ApprovalTimeout: 30 * time.Second,
	}
	return w
}

// start runs a daemon with the runbooks of w.deps until the test ends.
func (w *world) start() *executor.Daemon {
	w.t.Helper()
	d, err := executor.New(w.cfg, w.store, New(w.deps), zaptest.NewLogger(w.t), nil)
	require.NoError(w.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx)
	w.t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		require.NoError(w.t, d.Stop(sctx))
		cancel()
	})
	return d
}

// runSpec is a run as the frontend (or the operator CLI, for dry_run) inserts it.
type runSpec struct {
	kind, env, intent string
	input, plan       string // JSON
	dryRun            bool
}

func (w *world) submit(r runSpec) string {
	w.t.Helper()
	if r.input == "" {
		r.input = "{}"
	}
	var plan any
	if r.plan != "" {
		plan = r.plan
	}
	var id string
	require.NoError(w.t, w.db.Pool.QueryRow(context.Background(),
		`INSERT INTO runs (env, kind, intent, input, plan, dry_run) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		r.env, r.kind, r.intent, r.input, plan, r.dryRun).Scan(&id))
	return id
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finish waits until the run is finished and returns its status and error_message.
func (w *world) finish(id string) (status, msg string) {
	w.t.Helper()
	waitFor(w.t, time.Minute, "run "+id+" to finish", func() bool {
		var m *string
		var done bool
		require.NoError(w.t, w.db.Pool.QueryRow(context.Background(),
			`SELECT status, error_message, finished_at IS NOT NULL FROM runs WHERE id = $1`, id).Scan(&status, &m, &done))
		if m != nil {
			msg = *m
		}
		return done
	})
	return status, msg
}

// waitPhase waits until runs.phase is phase.
func (w *world) waitPhase(id, phase string) {
	w.t.Helper()
	waitFor(w.t, 30*time.Second, "run "+id+" to reach phase "+phase, func() bool {
		var p *string
		require.NoError(w.t, w.db.Pool.QueryRow(context.Background(), `SELECT phase FROM runs WHERE id = $1`, id).Scan(&p))
		return p != nil && *p == phase
	})
}

// waitStep waits until the run's step stepID has status.
func (w *world) waitStep(id, stepID, status string) {
	w.t.Helper()
	waitFor(w.t, 30*time.Second, fmt.Sprintf("step %s of run %s to be %s", stepID, id, status), func() bool {
		var n int
		require.NoError(w.t, w.db.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM run_steps WHERE run_id = $1 AND step_id = $2 AND status::text = $3`, id, stepID, status).Scan(&n))
		return n > 0
	})
}

// waitEvent waits for an event whose message contains substr.
func (w *world) waitEvent(id, substr string) {
	w.t.Helper()
	waitFor(w.t, 30*time.Second, fmt.Sprintf("run %s to log %q", id, substr), func() bool { return w.hasEvent(id, substr) })
}

func (w *world) cancel(id string) {
	w.t.Helper()
	_, err := w.db.Pool.Exec(context.Background(), `SELECT cancel_run($1)`, id)
	require.NoError(w.t, err)
}

func (w *world) events(id string) []executor.Event {
	w.t.Helper()
	evs, err := w.store.ListEvents(context.Background(), id, 0, 0)
	require.NoError(w.t, err)
	return evs
}

func (w *world) hasEvent(id, substr string) bool {
	for _, e := range w.events(id) {
		if strings.Contains(e.Message, substr) {
			return true
		}
	}
	return false
}

func (w *world) artifacts(id string) []executor.Artifact {
	w.t.Helper()
	as, err := w.store.ListArtifacts(context.Background(), id)
	require.NoError(w.t, err)
	return as
}

// artifact returns the first artifact of kind whose title contains title.
func (w *world) artifact(id, kind, title string) (executor.Artifact, bool) {
	for _, a := range w.artifacts(id) {
		if a.Kind == kind && strings.Contains(a.Title, title) {
			return a, true
		}
	}
	return executor.Artifact{}, false
}

// dump logs a run's events, for failing tests.
func (w *world) dump(id string) {
	for _, e := range w.events(id) {
		w.t.Logf("%3d %-9s %-7s %-12s %s", e.Seq, e.Phase, e.Level, e.Source, e.Message)
	}
}

// expect waits for the run to finish and checks its status and message.
func (w *world) expect(id, status, msgPart string) {
	w.t.Helper()
	got, msg := w.finish(id)
	if os.Getenv("RUNBOOKS_DUMP") != "" {
		w.dump(id)
	}
	if got != status || !strings.Contains(msg, msgPart) {
		w.dump(id)
		w.t.Fatalf("run %s: status %q, error_message %q; want %q containing %q", id, got, msg, status, msgPart)
	}
}

// blockPlan is a RunbookPlan with a block risk: the run waits for approval.
const blockPlan = `{"id":"p1","kind":"x","title":"t","summary":"s","inputs":[],"risks":[{"level":"block","code":"RISKY","message":"touches prod data"}],"integrations":[]}`
