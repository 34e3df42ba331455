package supabase_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/resttest"
)

// opsFixture is a fresh set of rows for one cell of the operations matrix.
type opsFixture struct {
	schedA, schedShared, schedAName string
	// Shared schedules an operator saved with a template, or with input
	// (opsd schedule add): browsers may read them, never change them.
	schedTemplate, schedInput       string
	failedA, failedShared, runningA string
}

func newOpsFixture(t *testing.T, pool *pgxpool.Pool) opsFixture {
	t.Helper()
	ctx := context.Background()
	n := permSeq.Add(1)
	var fx opsFixture
	q := func(dst *string, sql string, args ...any) {
		t.Helper()
		require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(dst))
	}
	fx.schedAName = fmt.Sprintf("a-%d", n)
	q(&fx.schedA, `INSERT INTO run_schedules (name, cron, env, kind, created_by) VALUES ($1, '@daily', 'dev', 'spec', $2) RETURNING id`, fx.schedAName, permUserA)
	q(&fx.schedShared, `INSERT INTO run_schedules (name, cron, env, kind) VALUES ($1, '@daily', 'dev', 'spec') RETURNING id`, fmt.Sprintf("shared-%d", n))
	var tpl string
	q(&tpl, `INSERT INTO run_templates (slug, title, template_yaml) VALUES ($1, 't', 'version: 1') RETURNING id`, fmt.Sprintf("ops-tpl-%d", n))
	q(&fx.schedTemplate, `SELECT opsd_schedule_save(jsonb_build_object('name', $1::text, 'cron', '0 9 * * mon-fri', 'env', 'dev', 'kind', 'spec',
		'template_id', $2::uuid), 'ops')->>'id'`, fmt.Sprintf("op-tpl-%d", n), tpl)
	q(&fx.schedInput, `SELECT opsd_schedule_save(jsonb_build_object('name', $1::text, 'cron', '0 3 * * *', 'env', 'dev', 'kind', 'healthcheck',
		'input', '{"target":"web"}'::jsonb), 'ops')->>'id'`, fmt.Sprintf("op-inp-%d", n))
	q(&fx.failedA, `INSERT INTO runs (env, kind, lane, created_by) VALUES ('dev', 'deploy', 'P', $1) RETURNING id`, permUserA)
	finishRun(t, pool, fx.failedA, "error", 0)
	q(&fx.failedShared, `INSERT INTO runs (env, kind, lane) VALUES ('dev', 'deploy', 'P') RETURNING id`)
	finishRun(t, pool, fx.failedShared, "canceled", 0)
	q(&fx.runningA, `INSERT INTO runs (env, kind, lane, created_by) VALUES ('dev', 'deploy', 'P', $1) RETURNING id`, permUserA)
	_, err := pool.Exec(ctx, `UPDATE runs SET status = 'running', claimed_by = 'w', attempt = 1, phase = 'preflight' WHERE id = $1`, fx.runningA)
	require.NoError(t, err)
	return fx
}

type opsOp = matrixOp[opsFixture]

// TestOperationsPermissionMatrix extends the permission matrix to the
// schedules, retry, retention and audit tables and functions: users manage
// their own schedules and retry what they may cancel; the audit trail cannot
// be written by anyone; the daemon's functions are the service role's.
func TestOperationsPermissionMatrix(t *testing.T) {
	t.Parallel()
	srv := resttest.Open(t, resttest.TestServer)
	db := srv.DB
	c := permClient{srv: srv}
	all := [4]string{permAllow, permAllow, permAllow, permAllow}
	serviceOnly := [4]string{permDeny, permDeny, permDeny, permAllow}
	owner := [4]string{permNone, permAllow, permNone, permAllow}
	nobody := [4]string{permDeny, permDeny, permDeny, permDeny}
	onlyService := [4]string{permNone, permNone, permNone, permAllow} // RLS hides the row from browsers
	rejected := [4]string{permReject, permReject, permReject, permReject}
	none := func(opsFixture) url.Values { return nil }
	byID := func(id func(opsFixture) string) func(opsFixture) url.Values {
		return func(fx opsFixture) url.Values { return eq(id(fx)) }
	}
	obj := func(kv ...any) func(opsFixture) any {
		return func(opsFixture) any {
			out := map[string]any{}
			for i := 0; i < len(kv); i += 2 {
				out[kv[i].(string)] = kv[i+1]
			}
			return out
		}
	}
	rpc := func(name string, want [4]string, args func(opsFixture) any) opsOp {
		fn, _, _ := strings.Cut(name, ":")
		return opsOp{"rpc " + name, http.MethodPost, "rpc/" + fn, none, args, want}
	}
	schedA := func(fx opsFixture) string { return fx.schedA }
	schedShared := func(fx opsFixture) string { return fx.schedShared }
	schedTemplate := func(fx opsFixture) string { return fx.schedTemplate }
	schedInput := func(fx opsFixture) string { return fx.schedInput }
	seq := 0
	newName := func(opsFixture) any {
		seq++
		return map[string]any{"name": fmt.Sprintf("new-%d", seq), "cron": "*/5 * * * *", "env": "dev", "kind": "healthcheck"}
	}
	ops := []opsOp{
		{"insert run_schedules", http.MethodPost, "run_schedules", none, newName, all},
		{"insert run_schedules with next_run_at", http.MethodPost, "run_schedules", none, func(opsFixture) any {
			seq++
			return map[string]any{"name": fmt.Sprintf("nra-%d", seq), "cron": "@daily", "env": "dev", "kind": "spec", "next_run_at": "2020-01-01T00:00:00Z"}
		}, serviceOnly},
		{"insert run_schedules as another user", http.MethodPost, "run_schedules", none, func(opsFixture) any {
			seq++
			return map[string]any{"name": fmt.Sprintf("ano-%d", seq), "cron": "@daily", "env": "dev", "kind": "spec", "created_by": permUserB}
		}, serviceOnly},
		{"insert run_schedules with input", http.MethodPost, "run_schedules", none, func(opsFixture) any {
			seq++
			return map[string]any{"name": fmt.Sprintf("inp-%d", seq), "cron": "@daily", "env": "prod", "kind": "deploy", "input": map[string]any{"target": "production"}}
		}, serviceOnly},
		{"update run_schedules template_id: shared", http.MethodPatch, "run_schedules", byID(schedShared),
			obj("template_id", "00000000-0000-4000-8000-000000000001"), serviceOnly},
		{"insert run_schedules bad cron", http.MethodPost, "run_schedules", none, obj("name", "bad", "cron", "@every 0s", "env", "dev", "kind", "spec"),
			[4]string{permReject, permReject, permReject, permReject}},
		{"update run_schedules: A's (pause)", http.MethodPatch, "run_schedules", byID(schedA), obj("enabled", false), owner},
		{"update run_schedules: shared", http.MethodPatch, "run_schedules", byID(schedShared), obj("cron", "@hourly"), all},
		{"update run_schedules last_run_at", http.MethodPatch, "run_schedules", byID(schedShared), obj("last_run_at", "2020-01-01T00:00:00Z"), serviceOnly},
		{"delete run_schedules: A's", http.MethodDelete, "run_schedules", byID(schedA), nil, owner},
		{"delete run_schedules: shared", http.MethodDelete, "run_schedules", byID(schedShared), nil, all},
		// An operator's schedule: whoever changed its env, kind, plan or cron
		// would run the operator's template with inputs of their choosing.
		{"update run_schedules: operator's template", http.MethodPatch, "run_schedules", byID(schedTemplate),
			obj("env", "prod", "kind", "deploy", "cron", "@every 1s", "overlap", "queue"), onlyService},
		{"update run_schedules: operator's template plan", http.MethodPatch, "run_schedules", byID(schedTemplate),
			obj("plan", map[string]any{"inputs": []any{map[string]any{"key": "branch", "value": "attacker"}}}), onlyService},
		{"update run_schedules: operator's input (pause)", http.MethodPatch, "run_schedules", byID(schedInput), obj("enabled", false), onlyService},
		{"delete run_schedules: operator's template", http.MethodDelete, "run_schedules", byID(schedTemplate), nil, onlyService},
		{"delete run_schedules: operator's input", http.MethodDelete, "run_schedules", byID(schedInput), nil, onlyService},
		{"insert run_schedules 9000-char lane", http.MethodPost, "run_schedules", none,
			obj("name", "poison", "cron", "@every 1s", "env", "dev", "kind", "healthcheck", "lane", strings.Repeat("L", 9000)), rejected},
		{"insert run_schedules 129-char cron", http.MethodPost, "run_schedules", none,
			obj("name", "long", "cron", strings.Repeat("1,", 60)+"1 * * * *", "env", "dev", "kind", "healthcheck"), rejected},
		{"insert runs 9000-char lane", http.MethodPost, "runs", none,
			obj("env", "dev", "kind", "healthcheck", "lane", strings.Repeat("L", 9000)), rejected},
		{"insert audit_log", http.MethodPost, "audit_log", none, obj("action", "approved", "actor", "forged"), nobody},
		{"update audit_log", http.MethodPatch, "audit_log", func(opsFixture) url.Values { return url.Values{"id": {"gt.0"}} }, obj("actor", "x"), nobody},
		{"delete audit_log", http.MethodDelete, "audit_log", func(opsFixture) url.Values { return url.Values{"id": {"gt.0"}} }, nil, nobody},

		rpc("retry_run: A's failed", owner, func(fx opsFixture) any { return map[string]any{"p_run_id": fx.failedA} }),
		rpc("retry_run: shared canceled", all, func(fx opsFixture) any { return map[string]any{"p_run_id": fx.failedShared} }),
		rpc("retry_run: A's running", [4]string{permNone, permReject, permNone, permReject}, func(fx opsFixture) any { return map[string]any{"p_run_id": fx.runningA} }),
		rpc("opsd_enqueue_due_schedules", serviceOnly, obj("p_limit", 5)),
		rpc("opsd_prune", serviceOnly, obj("p_worker", "w", "p_dry_run", true)),
		rpc("opsd_prune: audit_log", serviceOnly, obj("p_worker", "w", "p_audit_log", 365*86400, "p_dry_run", true)),
		rpc("opsd_audit", serviceOnly, obj()),
		rpc("opsd_queue_stats", serviceOnly, obj()),
		rpc("opsd_schedules", serviceOnly, obj()),
		rpc("opsd_schedule_save", serviceOnly, func(fx opsFixture) any {
			seq++
			return map[string]any{"p_schedule": map[string]any{"name": fmt.Sprintf("svc-%d", seq), "cron": "@daily", "env": "dev", "kind": "spec"}}
		}),
		rpc("opsd_schedule_set", serviceOnly, func(fx opsFixture) any { return map[string]any{"p_name": fx.schedAName, "p_enabled": false} }),
		rpc("opsd_schedule_delete", serviceOnly, func(fx opsFixture) any { return map[string]any{"p_name": fx.schedAName} }),
		rpc("opsd_cron_next", all, obj("p_expr", "*/5 * * * *")),
		rpc("opsd_cron_next: 40,009 characters", rejected, obj("p_expr", strings.Repeat("1,", 20000)+"1 * * * *")),
		rpc("opsd_cron_next: never fires", rejected, obj("p_expr", "0 0 30 2 *")),
		// The parser's parts are the owner's: opsd_cron_next calls them.
		rpc("opsd_cron_parse", nobody, obj("p_expr", "*/5 * * * *")),
		rpc("opsd_cron_next_parsed", nobody, obj("p_spec", map[string]any{"every": 1}, "p_tz", "UTC", "p_after", "2026-01-01T00:00:00Z")),
		rpc("opsd_requeue_run", serviceOnly, func(fx opsFixture) any {
			return map[string]any{"p_run_id": fx.runningA, "p_worker": "w", "p_attempt": 1, "p_delay_seconds": 5}
		}),
	}

	table, mismatches := runMatrix(t, c, permPrincipals(srv), ops, func() opsFixture { return newOpsFixture(t, db.Pool) })
	t.Log(table)
	require.Empty(t, mismatches)
}
