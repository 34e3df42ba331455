package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/opscontrolroom/opsd/internal/config"
)

// loadYAML loads a configuration file holding y, with nothing from flags.
func loadYAML(t testing.TB, dir, y string) (*config.Config, error) {
	t.Helper()
	p := filepath.Join(dir, "opsd.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("opsd", pflag.ContinueOnError)
	l := config.NewLoader(fs)
	if err := fs.Parse([]string{"--config", p}); err != nil {
		t.Fatal(err)
	}
	return l.Load(fs)
}

// clearEnv unsets every variable the loader reads, so that the file alone
// decides.
func clearEnv(t interface{ Setenv(k, v string) }) {
	for _, o := range config.Options {
		t.Setenv(o.Env, "")
	}
	for _, k := range []string{"VERCEL_TOKEN", "VERCEL_TEAM_ID", "VERCEL_API_URL", "GITHUB_TOKEN", "GITHUB_API_URL",
		"DIGITALOCEAN_TOKEN", "DIGITALOCEAN_API_URL"} {
		t.Setenv(k, "")
	}
}

// namesWhatIsWrong reports whether a load error points at something the
// operator can find: the file, or an option by its key.
func namesWhatIsWrong(msg string) bool {
	if strings.Contains(msg, "--config ") {
		return true
	}
	for _, o := range config.Options {
		if strings.Contains(msg, o.Key) {
			return true
		}
	}
	return strings.Contains(msg, "integrations") || strings.Contains(msg, "notifications")
}

var configSeeds = []string{
	"",
	"lanes: A,B\nlane_concurrency: 8\nheartbeat_interval: 1s\nstale_after: 5s\n",
	"database_url: postgres://u:p@h/db\nworker_id: w1\nlog_level: debug\nlog_format: console\n",
	"supabase_url: https://xyz.supabase.co\nsupabase_service_role_key: k\nwebhook_secret: s\nhttp_addr: ''\n",
	"integrations:\n  vercel: {token: t, project: web, projects: {prod: web}}\n  github: {token: ghp_x, repo: acme/web}\n" +
		"  digitalocean: {token: d, droplets: [a, b], health_urls: ['https://x']}\n  supabase:\n    prod: {url: 'https://p.supabase.co', key: k}\n" +
		"  url_allowlist: ['10.0.0.0/8']\n  defaults: {repo: acme/web, branch: main}\n",
	"notifications:\n  slack: ['https://hooks.slack.com/services/x']\n  webhooks: [x]\n",
	"heartbeat_interval: 1.5\n", "heartbeat_interval: x\n", "stale_after: -1s\n", "lane_concurrency: x\n",
	"lane_concurrency: 100000\n", "log_level: loud\n", "supabase_url: ftp://x\n", "integrations: 5\n",
	"integrations:\n  vercel: [1]\n", "worker_id: {a: 1}\n", "? [a]\n: b\n", "{", "- a\n- b\n", "a: &x [*x]\n",
	"lanes: [A, B]\n", "heartbeat_interval: 3\n", "idle_exit: -1s\n", "artifact_max_bytes: 10\n", "\t", "%YAML 9.9\n---\n",
	"heartbeat_interval: 9999999999999999999s\n", "chatty_rows_per_second: .nan\n", "chatty_rows_per_second: -.inf\n",
}

// FuzzConfigFile: whatever the file holds, loading it never panics, and a
// refusal names the file or the option that is wrong. A file that loads
// gives a configuration that passes its own validation.
func FuzzConfigFile(f *testing.F) {
	clearEnv(f)
	for _, s := range configSeeds {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, y string) {
		c, err := loadYAML(t, dir, y)
		if err != nil {
			if !namesWhatIsWrong(err.Error()) {
				t.Fatalf("error names neither the file nor an option: %q", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("a loaded configuration fails validation: %v", err)
		}
		if c.HeartbeatInterval <= 0 || c.StaleAfter < 2*c.HeartbeatInterval || len(c.Lanes) == 0 || c.WorkerID == "" {
			t.Fatalf("loaded an unusable configuration: %+v", c)
		}
		if _, err := c.StoreKind(); err != nil && !namesWhatIsWrong(err.Error()) && !strings.Contains(err.Error(), "DATABASE_URL") {
			t.Fatalf("store error names nothing: %v", err)
		}
		_ = c.Secrets()
	})
}

// TestConfigFileShapes: the natural YAML spellings of list and duration
// options. The skipped cases are open bugs (see the chaos/fuzz report):
// remove the skip together with the fix.
func TestConfigFileShapes(t *testing.T) {
	clearEnv(t)
	cases := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *config.Config, err error)
		bug   string
	}{
		{"lanes as a comma list", "lanes: A, B\n", func(t *testing.T, c *config.Config, err error) {
			if err != nil || strings.Join(c.Lanes, ",") != "A,B" {
				t.Fatalf("lanes = %v, %v", c, err)
			}
		}, ""},
		{"durations with units", "heartbeat_interval: 500ms\nstale_after: 2s\n", func(t *testing.T, c *config.Config, err error) {
			if err != nil || c.HeartbeatInterval != 500*time.Millisecond || c.StaleAfter != 2*time.Second {
				t.Fatalf("got %v, %v", c, err)
			}
		}, ""},
		{"a fractional number is refused naming the option", "stale_after: 1.5\n", func(t *testing.T, _ *config.Config, err error) {
			if err == nil || !strings.Contains(err.Error(), "stale_after") {
				t.Fatalf("err = %v", err)
			}
		}, ""},
		{"lanes as a YAML list", "lanes: [A, B]\n", func(t *testing.T, c *config.Config, err error) {
			if err != nil || strings.Join(c.Lanes, ",") != "A,B" {
				t.Fatalf("lanes: [A, B] gives %v, %v", c, err)
			}
		}, ""},
		{"approval_envs as a YAML list keeps approvals", "approval_envs: [prod, staging]\n", func(t *testing.T, c *config.Config, err error) {
			if err != nil || strings.Join(c.ApprovalEnvs, ",") != "prod,staging" {
				t.Fatalf("approval_envs: [prod, staging] gives %q, %v: prod deploys would run without approval", c.ApprovalEnvs, err)
			}
		}, ""},
		{"a bare integer duration", "heartbeat_interval: 3\n", func(t *testing.T, c *config.Config, err error) {
			if err == nil && c.HeartbeatInterval != 3*time.Second {
				t.Fatalf("heartbeat_interval: 3 loads as %s (the pre-check reads it as 3s)", c.HeartbeatInterval)
			}
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.bug != "" && os.Getenv("OPSD_TEST_KNOWN_BUGS") == "" {
				t.Skip("open bug: " + c.bug + " (OPSD_TEST_KNOWN_BUGS=1 runs it)")
			}
			cfg, err := loadYAML(t, t.TempDir(), c.yaml)
			c.check(t, cfg, err)
		})
	}
}
