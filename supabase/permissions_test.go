package supabase_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
	"github.com/opscontrolroom/opsd/internal/resttest"
	"github.com/opscontrolroom/opsd/supabase/reststore"
)

const (
	permUserA = "aaaaaaaa-1111-4000-8000-00000000000a"
	permUserB = "bbbbbbbb-2222-4000-8000-00000000000b"
)

// Outcomes of one request, as the matrix prints them.
const (
	permAllow  = "allow"  // 2xx and it took effect (rows came back, or the function said true)
	permNone   = "none"   // 2xx but nothing was touched: RLS hid the row, or the function said false
	permDeny   = "deny"   // 401/403 insufficient_privilege (42501): no grant, or RLS WITH CHECK failed
	permReject = "reject" // refused by a guard (CHECK, trigger): not even the service role may
)

// permPrincipal is who sends a request through the PostgREST test server,
// with the headers supabase-js sends.
type permPrincipal struct {
	name          string
	apikey, token string
}

// permFixture is a fresh set of rows for one cell of the matrix, so every
// request acts on rows no earlier request changed.
type permFixture struct {
	sessA, sessShared                 string
	runA, runShared, runARunning      string
	runDone                           string
	template, specDoc, specSlug, slug string
}

var permSeq atomic.Int64

func newPermFixture(t *testing.T, pool *pgxpool.Pool) permFixture {
	t.Helper()
	ctx := context.Background()
	n := permSeq.Add(1)
	var fx permFixture
	q := func(dst *string, sql string, args ...any) {
		t.Helper()
		require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(dst))
	}
	q(&fx.sessA, `INSERT INTO sessions (title, created_by) VALUES ('a', $1) RETURNING id`, permUserA)
	q(&fx.sessShared, `INSERT INTO sessions (title) VALUES ('shared') RETURNING id`)
	q(&fx.runA, `INSERT INTO runs (env, kind, lane, created_by) VALUES ('dev', 'deploy', 'P', $1) RETURNING id`, permUserA)
	q(&fx.runShared, `INSERT INTO runs (env, kind, lane) VALUES ('dev', 'healthcheck', 'P') RETURNING id`)
	q(&fx.runARunning, `INSERT INTO runs (env, kind, lane, created_by) VALUES ('dev', 'deploy', 'P', $1) RETURNING id`, permUserA)
	_, err := pool.Exec(ctx, `UPDATE runs SET status = 'running', claimed_by = 'w', claimed_at = now(), heartbeat_at = now() - interval '1 hour',
		started_at = now(), attempt = 1 WHERE id = $1`, fx.runARunning)
	require.NoError(t, err)
	q(&fx.runDone, `INSERT INTO runs (env, kind, lane, created_by) VALUES ('dev', 'deploy', 'P', $1) RETURNING id`, permUserA)
	_, err = pool.Exec(ctx, `UPDATE runs SET status = 'running', claimed_by = 'w', attempt = 1 WHERE id = $1`, fx.runDone)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE runs SET status = 'success', finished_at = now() WHERE id = $1`, fx.runDone)
	require.NoError(t, err)
	// Rows of a queued run exist only by the database's own hand: seed them
	// with the fence lifted, as the system's functions do.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT public.opsd_fenced_write(true)`)
	require.NoError(t, err)
	for _, r := range []string{fx.runA, fx.runARunning} {
		_, err = tx.Exec(ctx, `INSERT INTO run_events (run_id, seq, level, source, message) VALUES ($1, 1, 'info', 'System', 'e')`, r)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `INSERT INTO artifacts (run_id, kind, title, value) VALUES ($1, 'file', 't', 'v')`, r)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `INSERT INTO run_steps (run_id, idx, step_id, title) VALUES ($1, 0, 's', 't')`, r)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
	// User B is an approver; user A is not.
	_, err = pool.Exec(ctx, `INSERT INTO approvers (user_id, name) VALUES ($1, 'user B') ON CONFLICT DO NOTHING`, permUserB)
	require.NoError(t, err)
	fx.slug = fmt.Sprintf("tpl-%d", n)
	q(&fx.template, `INSERT INTO run_templates (slug, title, template_yaml) VALUES ($1, 't', 'version: 1') RETURNING id`, fx.slug)
	fx.specSlug = fmt.Sprintf("ops/spec-%d", n)
	q(&fx.specDoc, `INSERT INTO spec_docs (slug, title, content) VALUES ($1, 'prd.md', 'x') RETURNING id`, fx.specSlug)
	return fx
}

// matrixOp is one write or RPC, and what CONTRACT.md's security model says
// each principal gets: anon, user A (the owner of the rows marked A), user B
// (another user), service_role. F is the fixture each cell gets fresh.
type matrixOp[F any] struct {
	name   string
	method string
	path   string // under /rest/v1
	query  func(fx F) url.Values
	body   func(fx F) any
	want   [4]string
}

type permOp = matrixOp[permFixture]

// runMatrix sends every op as every principal, each cell on a fresh
// fixture, and returns the printed matrix and what differs from want.
func runMatrix[F any](t *testing.T, c permClient, principals []permPrincipal, ops []matrixOp[F], fixture func() F) (string, []string) {
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-48s | %-16s | %-16s | %-16s | %-16s\n", "operation", "anon", "user A (owner)", "user B (other)", "service_role")
	table.WriteString(strings.Repeat("-", 48+4*19) + "\n")
	var mismatches []string
	for _, op := range ops {
		fmt.Fprintf(&table, "%-48s", op.name)
		for i, p := range principals {
			fx := fixture()
			var body any
			if op.body != nil {
				body = op.body(fx)
			}
			got, detail := c.send(t, p, op.method, op.path, op.query(fx), body)
			mark := ""
			if got != op.want[i] {
				mark = " !!"
				mismatches = append(mismatches, fmt.Sprintf("%s as %s: got %s (%s), want %s", op.name, p.name, got, detail, op.want[i]))
			}
			fmt.Fprintf(&table, " | %-16s", fmt.Sprintf("%s %s%s", got, strings.SplitN(detail, ":", 2)[0], mark))
		}
		table.WriteString("\n")
	}
	return table.String(), mismatches
}

func eq(id string) url.Values { return url.Values{"id": {"eq." + id}} }

func byRun(id string) url.Values { return url.Values{"run_id": {"eq." + id}} }

func permOps() []permOp {
	all := [4]string{permAllow, permAllow, permAllow, permAllow}
	serviceOnly := [4]string{permDeny, permDeny, permDeny, permAllow}
	// Written only through the fenced functions: no role writes these rows directly.
	nobody := [4]string{permDeny, permDeny, permDeny, permDeny}
	owner := [4]string{permNone, permAllow, permNone, permAllow}
	post := http.MethodPost
	patch := http.MethodPatch
	del := http.MethodDelete
	none := func(permFixture) url.Values { return nil }
	rpc := func(name string, want [4]string, args func(fx permFixture) any) permOp {
		fn, _, _ := strings.Cut(name, ":")
		return permOp{name: "rpc " + name, method: post, path: "rpc/" + fn, query: none, body: args, want: want}
	}
	m := func(kv ...any) func(permFixture) any {
		return func(permFixture) any {
			out := map[string]any{}
			for i := 0; i < len(kv); i += 2 {
				out[kv[i].(string)] = kv[i+1]
			}
			return out
		}
	}
	return []permOp{
		{"insert sessions", post, "sessions", none, m("title", "s"), all},
		{"insert sessions as another user (created_by)", post, "sessions", none, m("title", "s", "created_by", permUserB), serviceOnly},
		{"update sessions: A's", patch, "sessions", func(fx permFixture) url.Values { return eq(fx.sessA) }, m("title", "t"), owner},
		{"update sessions: shared", patch, "sessions", func(fx permFixture) url.Values { return eq(fx.sessShared) }, m("title", "t"), all},
		{"delete sessions: A's", del, "sessions", func(fx permFixture) url.Values { return eq(fx.sessA) }, nil, serviceOnly},

		{"insert runs (queued)", post, "runs", none, m("env", "dev", "kind", "deploy", "lane", "B", "priority", 5), all},
		{"insert runs with status running", post, "runs", none, m("env", "dev", "kind", "deploy", "status", "running"),
			[4]string{permDeny, permDeny, permDeny, permReject}},
		{"insert runs with claimed_by", post, "runs", none, m("env", "dev", "kind", "deploy", "claimed_by", "me"),
			[4]string{permDeny, permDeny, permDeny, permReject}},
		{"insert runs as another user (created_by)", post, "runs", none, m("env", "dev", "kind", "deploy", "created_by", permUserB), serviceOnly},
		{"update runs status=canceled: A's queued", patch, "runs", func(fx permFixture) url.Values { return eq(fx.runA) }, m("status", "canceled"), owner},
		{"update runs status=canceled: shared queued", patch, "runs", func(fx permFixture) url.Values { return eq(fx.runShared) }, m("status", "canceled"), all},
		{"update runs status=success: A's running", patch, "runs", func(fx permFixture) url.Values { return eq(fx.runARunning) }, m("status", "success"),
			[4]string{permNone, permDeny, permNone, permAllow}},
		{"update runs claimed_by: A's", patch, "runs", func(fx permFixture) url.Values { return eq(fx.runA) }, m("claimed_by", "x"), serviceOnly},
		{"update runs priority: A's", patch, "runs", func(fx permFixture) url.Values { return eq(fx.runA) }, m("priority", 1), serviceOnly},
		{"update runs status: a finished run", patch, "runs", func(fx permFixture) url.Values { return eq(fx.runDone) }, m("status", "canceled"),
			[4]string{permNone, permNone, permNone, permReject}},
		{"delete runs: A's", del, "runs", func(fx permFixture) url.Values { return eq(fx.runA) }, nil, serviceOnly},

		{"insert run_events", post, "run_events", none, func(fx permFixture) any {
			return map[string]any{"run_id": fx.runA, "seq": 2, "level": "info", "source": "System", "message": "forged"}
		}, nobody},
		{"update run_events: A's", patch, "run_events", func(fx permFixture) url.Values { return byRun(fx.runA) }, m("message", "x"), nobody},
		{"delete run_events: A's", del, "run_events", func(fx permFixture) url.Values { return byRun(fx.runA) }, nil, nobody},
		{"insert artifacts", post, "artifacts", none, func(fx permFixture) any {
			return map[string]any{"run_id": fx.runA, "kind": "link", "title": "t", "value": "https://evil.example"}
		}, nobody},
		{"update artifacts: A's", patch, "artifacts", func(fx permFixture) url.Values { return byRun(fx.runA) }, m("value", "x"), nobody},
		{"delete artifacts: A's", del, "artifacts", func(fx permFixture) url.Values { return byRun(fx.runA) }, nil, nobody},
		{"insert run_steps", post, "run_steps", none, func(fx permFixture) any {
			return map[string]any{"run_id": fx.runA, "idx": 1, "step_id": "s", "title": "t"}
		}, nobody},
		{"update run_steps: A's", patch, "run_steps", func(fx permFixture) url.Values { return byRun(fx.runA) }, m("status", "succeeded"), nobody},
		{"delete run_steps: A's", del, "run_steps", func(fx permFixture) url.Values { return byRun(fx.runA) }, nil, nobody},
		{"insert run_templates", post, "run_templates", none, func(fx permFixture) any {
			return map[string]any{"slug": fx.slug + "-new", "title": "t", "template_yaml": "version: 1"}
		}, serviceOnly},
		{"update run_templates", patch, "run_templates", func(fx permFixture) url.Values { return eq(fx.template) }, m("template_yaml", "version: 2"), serviceOnly},
		{"delete run_templates", del, "run_templates", func(fx permFixture) url.Values { return eq(fx.template) }, nil, serviceOnly},
		{"insert spec_docs", post, "spec_docs", none, func(fx permFixture) any {
			return map[string]any{"slug": fx.specSlug + "-new", "title": "t", "content": "c"}
		}, nobody},
		{"update spec_docs (Spec Kit editor)", patch, "spec_docs", func(fx permFixture) url.Values { return eq(fx.specDoc) }, m("content", "edited"), all},
		{"update spec_docs slug", patch, "spec_docs", func(fx permFixture) url.Values { return eq(fx.specDoc) }, m("slug", "moved"), serviceOnly},
		{"delete spec_docs", del, "spec_docs", func(fx permFixture) url.Values { return eq(fx.specDoc) }, nil, nobody},

		rpc("claim_run", serviceOnly, m("p_worker", "w2", "p_lane", "P", "p_limit", 1)),
		rpc("claim_runs", serviceOnly, m("p_worker", "w2", "p_limit", 1)),
		rpc("heartbeat_runs", serviceOnly, func(fx permFixture) any {
			return map[string]any{"p_worker": "w", "p_run_ids": []string{fx.runARunning}, "p_attempts": []int{1}}
		}),
		rpc("heartbeat_run", serviceOnly, func(fx permFixture) any { return map[string]any{"p_run_id": fx.runARunning, "p_worker": "w"} }),
		rpc("set_run_phase", serviceOnly, func(fx permFixture) any {
			return map[string]any{"p_run_id": fx.runARunning, "p_worker": "w", "p_attempt": 1, "p_phase": "action"}
		}),
		rpc("finish_run", serviceOnly, func(fx permFixture) any {
			return map[string]any{"p_run_id": fx.runARunning, "p_worker": "w", "p_attempt": 1, "p_status": "success"}
		}),
		rpc("complete_run", serviceOnly, func(fx permFixture) any { return map[string]any{"p_run_id": fx.runARunning, "p_status": "succeeded"} }),
		rpc("release_run", serviceOnly, func(fx permFixture) any {
			return map[string]any{"p_run_id": fx.runARunning, "p_worker": "w", "p_attempt": 1}
		}),
		rpc("reap_stale_runs", serviceOnly, m()),
		rpc("append_run_rows", [4]string{permDeny, permDeny, permDeny, permNone}, func(fx permFixture) any {
			// 2xx for the service role; it answers the refused leases, and none is.
			return map[string]any{"p_worker": "w", "p_events": []map[string]any{{"run_id": fx.runARunning, "attempt": 1,
				"seq": 2, "level": "info", "source": "System", "message": "m"}}}
		}),
		rpc("put_artifact", serviceOnly, func(fx permFixture) any {
			return map[string]any{"p_worker": "w", "p_run_id": fx.runARunning, "p_attempt": 1, "p_kind": "link", "p_title": "t", "p_value": "https://x"}
		}),
		rpc("put_spec_doc", serviceOnly, func(fx permFixture) any {
			return map[string]any{"p_worker": "w", "p_run_id": fx.runARunning, "p_attempt": 1, "p_slug": fx.specSlug, "p_title": "t", "p_content": "c"}
		}),
		rpc("cancel_run: A's running", owner, func(fx permFixture) any { return map[string]any{"p_run_id": fx.runARunning} }),
		rpc("cancel_run: shared", all, func(fx permFixture) any { return map[string]any{"p_run_id": fx.runShared} }),
		// Only approvers (user B) approve, never their own runs; the service
		// role (the operator CLI) must name the operator.
		rpc("approve_run: A's", [4]string{permDeny, permDeny, permAllow, permReject}, func(fx permFixture) any { return map[string]any{"p_run_id": fx.runA} }),
		rpc("approve_run: shared", [4]string{permDeny, permDeny, permAllow, permReject}, func(fx permFixture) any { return map[string]any{"p_run_id": fx.runShared} }),
		rpc("approve_run: A's, naming the operator", [4]string{permDeny, permDeny, permAllow, permAllow}, func(fx permFixture) any {
			return map[string]any{"p_run_id": fx.runA, "p_approver": "ops"}
		}),
		rpc("reject_run: A's", [4]string{permDeny, permDeny, permAllow, permAllow}, func(fx permFixture) any {
			return map[string]any{"p_run_id": fx.runA, "p_reason": "not today", "p_approver": "ops"}
		}),
		{"insert approvers", post, "approvers", none, func(fx permFixture) any {
			return map[string]any{"user_id": "cccccccc-3333-4000-8000-00000000000c", "name": "c"}
		}, serviceOnly},
		rpc("enqueue_run", all, m("p_env", "dev", "p_kind", "healthcheck", "p_plan", map[string]any{"title": "x"})),
		rpc("ping", all, m()),
		rpc("opsd_schema_version", serviceOnly, m()),
		rpc("opsd_lane_counts", serviceOnly, m()),
	}
}

// permClient sends requests as the principals.
type permClient struct {
	srv *resttest.PostgREST
}

// send performs one request and classifies the answer.
func (c permClient) send(t *testing.T, p permPrincipal, method, path string, q url.Values, body any) (outcome, detail string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	u := c.srv.URL + postgresttest.Prefix + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(t, err)
	req.Header.Set("apikey", p.apikey)
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Prefer", "return=representation")
	resp, err := c.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var pe struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &pe)
		detail = fmt.Sprintf("%d %s", resp.StatusCode, pe.Code)
		if (resp.StatusCode == 401 || resp.StatusCode == 403) && pe.Code == "42501" {
			return permDeny, detail
		}
		return permReject, detail + ": " + pe.Message
	}
	// 2xx: did it take effect? Tables answer the affected rows; functions
	// a value (false, null and [] mean nothing happened).
	var v any
	_ = json.Unmarshal(raw, &v)
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return permNone, fmt.Sprintf("%d []", resp.StatusCode)
		}
	case bool:
		if !x {
			return permNone, fmt.Sprintf("%d false", resp.StatusCode)
		}
	case nil:
		if !strings.HasPrefix(path, "rpc/") || len(bytes.TrimSpace(raw)) > 0 {
			return permNone, fmt.Sprintf("%d null", resp.StatusCode)
		}
	}
	return permAllow, fmt.Sprintf("%d", resp.StatusCode)
}

func permPrincipals(srv *resttest.PostgREST) []permPrincipal {
	anon := srv.AnonKey()
	return []permPrincipal{
		{"anon", anon, anon},
		{"user A", anon, srv.UserToken(permUserA)},
		{"user B", anon, srv.UserToken(permUserB)},
		{"service_role", srv.ServiceKey(), srv.ServiceKey()},
	}
}

// TestPermissionMatrix sends every write and RPC through the PostgREST test
// server, and a real PostgREST when one is available (resttest), as anon, two signed-in users and the service role, prints the
// matrix, and checks it against CONTRACT.md's security model: the browser
// may create and update sessions, create queued runs, cancel runs, approve
// (signed in only) and edit spec docs; only the service role writes events,
// artifacts, steps and run status, and runs the claim, heartbeat, finish
// and reap functions.
func TestPermissionMatrix(t *testing.T) {
	t.Parallel()
	eachPostgREST(t, func(t *testing.T, kind resttest.Kind) {
		t.Parallel()
		testPermissionMatrix(t, kind)
	})
}

func testPermissionMatrix(t *testing.T, kind resttest.Kind) {
	srv := resttest.Open(t, kind)
	table, mismatches := runMatrix(t, permClient{srv: srv}, permPrincipals(srv), permOps(),
		func() permFixture { return newPermFixture(t, srv.DB.Pool) })
	t.Log(table)
	require.Empty(t, mismatches, "the permission matrix differs from CONTRACT.md's security model")
}

// TestEventsReachTheirSubscribers: Supabase Realtime delivers a row to a
// subscriber only if the subscriber may SELECT it. Rows the daemon writes
// (through reststore.Store with the service-role key, as in production) must be
// readable by the run's owner, and by anon for a shared run, and by no
// other user, on every table the UI subscribes to.
func TestEventsReachTheirSubscribers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := resttest.Open(t, resttest.TestServer)
	store, err := reststore.New(reststore.Config{URL: srv.URL, ServiceRoleKey: srv.ServiceKey(), HTTPClient: srv.Client()})
	require.NoError(t, err)
	defer store.Close()
	principals := permPrincipals(srv)

	// The browser inserts the runs, as user A and as anon.
	var owned, shared []map[string]any
	for _, who := range []struct {
		p   permPrincipal
		out *[]map[string]any
	}{{principals[1], &owned}, {principals[0], &shared}} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+postgresttest.Prefix+"runs",
			strings.NewReader(`{"env":"dev","kind":"healthcheck","lane":"A"}`))
		req.Header.Set("apikey", who.p.apikey)
		req.Header.Set("Authorization", "Bearer "+who.p.token)
		req.Header.Set("Prefer", "return=representation")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(who.out))
		resp.Body.Close()
	}
	runA, runShared := owned[0]["id"].(string), shared[0]["id"].(string)

	// The daemon claims them and writes events, an artifact and a step.
	claimed := map[string]bool{}
	for i := 0; i < 5 && len(claimed) < 2; i++ {
		runs, err := store.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w", Lane: "A", Limit: 2})
		require.NoError(t, err)
		for _, r := range runs {
			claimed[r.ID] = true
		}
	}
	require.Len(t, claimed, 2)
	const n = 5
	for _, id := range []string{runA, runShared} {
		evs := make([]executor.Event, n)
		for i := range evs {
			evs[i] = executor.Event{RunID: id, Seq: i + 1, TS: time.Now(), Level: "info", Source: "System", Message: fmt.Sprintf("event %d", i+1)}
		}
		for i := range evs {
			evs[i].Attempt = 1
		}
		refused, err := store.AppendRows(ctx, "w", executor.Rows{Events: evs,
			Steps: []executor.Step{{RunID: id, Idx: 0, StepID: "validate", Title: "Validate", Kind: "system", Status: "running", Attempt: 1}}})
		require.NoError(t, err)
		require.Empty(t, refused)
		require.NoError(t, store.PutArtifact(ctx, executor.Lease{RunID: id, Worker: "w", Attempt: 1},
			executor.Artifact{RunID: id, Kind: "link", Title: "t", Value: "https://x"}))
	}

	// What each subscriber sees, by the frontend's own queries.
	count := func(p permPrincipal, table string, q url.Values) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+postgresttest.Prefix+table+"?"+q.Encode(), nil)
		req.Header.Set("apikey", p.apikey)
		req.Header.Set("Authorization", "Bearer "+p.token)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s reads %s", p.name, table)
		var rows []map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rows))
		return len(rows)
	}
	type want struct{ anon, userA, userB, service bool }
	var report strings.Builder
	fmt.Fprintf(&report, "\n%-34s | %-6s | %-6s | %-6s | %-12s\n", "rows of", "anon", "user A", "user B", "service_role")
	for _, run := range []struct {
		name string
		id   string
		w    want
	}{
		{"A's run", runA, want{false, true, false, true}},
		{"a shared run", runShared, want{true, true, true, true}},
	} {
		for _, tb := range []struct {
			table string
			q     url.Values
			rows  int
		}{
			{"runs", url.Values{"id": {"eq." + run.id}}, 1},
			{"run_events", url.Values{"run_id": {"eq." + run.id}, "order": {"ts.desc"}, "limit": {"200"}}, n},
			{"artifacts", url.Values{"run_id": {"eq." + run.id}}, 1},
			{"run_steps", url.Values{"run_id": {"eq." + run.id}}, 1},
		} {
			fmt.Fprintf(&report, "%-34s", tb.table+" of "+run.name)
			for i, p := range principals {
				expect := []bool{run.w.anon, run.w.userA, run.w.userB, run.w.service}[i]
				got := count(p, tb.table, tb.q)
				fmt.Fprintf(&report, " | %-6d", got)
				if expect {
					require.Equal(t, tb.rows, got, "%s must see every row of %s of %s", p.name, tb.table, run.name)
				} else {
					require.Zero(t, got, "%s must not see %s of %s", p.name, tb.table, run.name)
				}
			}
			report.WriteString("\n")
		}
	}
	t.Log(report.String())
}
