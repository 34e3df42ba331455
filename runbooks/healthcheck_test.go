package runbooks

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters/digitalocean/dotest"
	"github.com/opscontrolroom/opsd/adapters/vercel/verceltest"
)

func report(w *world, id string) string {
	w.t.Helper()
	a, ok := w.artifact(id, "file", "Healthcheck report")
	require.True(w.t, ok, "report artifact")
	return a.Value
}

func noDropletCalls(w *world, id string) {
	require.Empty(w.t, w.do.Requests(), "no check may run")
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(site.Close)
	run := runSpec{kind: "healthcheck", env: "prod", input: `{"urls":["` + site.URL + `/up"]}`}
	unconfigured := func(w *world) {
		w.deps.Integrations = Integrations{}
		w.deps.DefaultSupabase = SupabaseTarget{}
	}
	scenarios := []scenario{
		{
			name: "success", run: run, status: "success",
			setup: func(w *world) { w.deps.Integrations.DigitalOcean.HealthURLs = []string{site.URL + "/up"} },
			check: func(w *world, id string) {
				r := report(w, id)
				for _, want := range []string{"| Integration | Check | Result |", "| Vercel | web latest deployment | ✅ ok | READY |",
					"| Supabase | rpc_ping | ✅ ok |", "| DigitalOcean | droplet web-1 | ✅ ok | active |",
					"| GitHub | acme/web@main latest workflow run | ✅ ok | success |", "| System | " + site.URL + "/up | ✅ ok | 200 |",
					"| DigitalOcean | " + site.URL + "/up | ✅ ok | 200 |"} {
					require.Contains(w.t, r, want)
				}
				require.True(w.t, w.hasEvent(id, "GET /v2/droplets -> 200"))
				require.True(w.t, w.hasEvent(id, "all 9 checks passed"))
			},
		},
		{
			name: "unconfigured_skipped", run: runSpec{kind: "healthcheck", env: "dev"}, status: "success",
			setup: func(w *world) {
				w.deps.Integrations.DigitalOcean.Token = ""
				w.deps.Integrations.Supabase = nil
			},
			check: func(w *world, id string) {
				require.True(w.t, w.hasEvent(id, "DigitalOcean droplets skipped: DigitalOcean is not configured: set DIGITALOCEAN_TOKEN"))
				require.True(w.t, w.hasEvent(id, "Supabase skipped: Supabase for env dev is not configured: set integrations.supabase.dev.url"))
				require.NotContains(w.t, report(w, id), "DigitalOcean")
			},
		},
		{
			name: "validation_failure", status: "error", msg: `input "urls"[0] must be an http(s) URL, got "ftp://x"`,
			run: runSpec{kind: "healthcheck", env: "dev", input: `{"urls":"ftp://x","repo":"x"}`},
			check: func(w *world, id string) {
				_, msg := w.finish(id)
				require.Contains(w.t, msg, `input "repo" must be a GitHub repository "owner/name", got "x"`)
				noDropletCalls(w, id)
			},
		},
		{
			name: "preflight_failure_nothing_configured", run: runSpec{kind: "healthcheck", env: "dev"}, status: "error",
			msg: "nothing to check: configure at least one integration", setup: unconfigured,
		},
		{
			// A check whose API keeps failing: recorded as failed in the
			// action, re-checked and reported in verify, where the run fails.
			name: "action_failure_api_error", run: run, status: "error", msg: "DigitalOcean all droplets",
			setup: func(w *world) {
				w.deps.Integrations.DigitalOcean.Tag = ""
				w.do.Fail(dotest.Failure{PathPrefix: "/v2/droplets", Status: 500, Message: "server exploded", Times: 100})
			},
			check: func(w *world, id string) {
				require.Contains(w.t, report(w, id), "| DigitalOcean | all droplets | ❌ failed | error |")
				require.True(w.t, w.hasEvent(id, "re-checking DigitalOcean all droplets"))
			},
		},
		{
			name: "flaky_check_passes_on_recheck", run: run, status: "success",
			setup: func(w *world) {
				w.do.Fail(dotest.Failure{PathPrefix: "/v2/droplets", Status: 503, Times: 4}) // every attempt of the first check
			},
			check: func(w *world, id string) {
				require.Contains(w.t, report(w, id), "(passed on re-check)")
			},
		},
		{
			name: "verify_failure_unhealthy", run: run, status: "error", msg: "1 of 8 checks failed: Vercel web latest deployment: ERROR",
			setup: func(w *world) {
				w.vercel.AddDeployment(verceltest.Deployment{Name: "web", ProjectID: w.project.ID, State: "ERROR", ErrorCode: "BUILD_FAILED", ErrorMessage: "boom"})
			},
			check: func(w *world, id string) {
				require.Contains(w.t, report(w, id), "| Vercel | web latest deployment | ❌ failed | ERROR |")
				var phase string
				require.NoError(w.t, w.db.Pool.QueryRow(w.t.Context(), `SELECT phase FROM runs WHERE id = $1`, id).Scan(&phase))
				require.Equal(w.t, "verify", phase)
			},
		},
		{
			name: "input_url_refused_by_policy", status: "error", msg: "url refused",
			run: runSpec{kind: "healthcheck", env: "dev", input: `{"urls":["http://169.254.169.254/latest/meta-data"]}`},
			check: func(w *world, id string) {
				require.Contains(w.t, report(w, id), "link-local (cloud metadata service)")
			},
		},
		{
			name: "input_url_loopback_refused_without_allowlist", status: "error", msg: "is a loopback address",
			run:   runSpec{kind: "healthcheck", env: "dev", input: `{"urls":["` + site.URL + `/up"]}`},
			setup: func(w *world) { w.deps.Integrations.URLAllowlist = nil },
		},
		{
			name: "cancel_during_action", run: run, status: "canceled", msg: "canceled by operator during action",
			setup:  func(w *world) { w.do.Fail(dotest.Failure{PathPrefix: "/v2/droplets", Status: 500, Delay: time.Minute}) },
			during: cancelInAction,
		},
		{
			name: "dry_run", status: "success",
			run: runSpec{kind: "healthcheck", env: "prod", dryRun: true},
			check: func(w *world, id string) {
				noDropletCalls(w, id)
				dryRunSkipped(w, id, "run 4 read-only checks: Vercel latest deployment of web; Supabase (prod) health; DigitalOcean droplets tagged web")
				_, ok := w.artifact(id, "file", "Healthcheck report")
				require.False(w.t, ok)
			},
		},
	}
	blocked := run
	blocked.plan = blockPlan
	scenarios = append(scenarios, approvalScenarios(blocked, func(w *world, id string) {
		require.True(w.t, strings.Contains(report(w, id), "droplet web-1"))
	}, noDropletCalls)...)
	runScenarios(t, scenarios)
}
