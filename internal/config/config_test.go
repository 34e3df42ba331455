package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/opscontrolroom/opsd/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func load(t *testing.T, args []string, env map[string]string, file string) (*config.Config, error) {
	t.Helper()
	envs := []string{"VERCEL_TOKEN", "VERCEL_TEAM_ID", "VERCEL_API_URL", "GITHUB_TOKEN", "GITHUB_API_URL", "DIGITALOCEAN_TOKEN", "DIGITALOCEAN_API_URL", "OPSD_POLICY_ALLOW_CROSS_ENV"}
	for _, o := range config.Options {
		envs = append(envs, o.Env)
	}
	for _, e := range envs {
		t.Setenv(e, "")
		os.Unsetenv(e)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	l := config.NewLoader(fs)
	if file != "" {
		p := filepath.Join(t.TempDir(), "opsd.yaml")
		require.NoError(t, os.WriteFile(p, []byte(file), 0o600))
		args = append(args, "--config", p)
	}
	require.NoError(t, fs.Parse(args))
	return l.Load(fs)
}

func TestPrecedence(t *testing.T) {
	file := "heartbeat_interval: 2s\nstale_after: 40s\nlanes: A,B\nintegrations:\n  github: {repo: acme/web, token: from-file-token}\n"
	c, err := load(t, nil, nil, "")
	require.NoError(t, err)
	require.Equal(t, 3*time.Second, c.HeartbeatInterval, "default")
	require.Equal(t, []string{"A", "B", "C", "D"}, c.Lanes)
	require.NotEmpty(t, c.WorkerID)

	c, err = load(t, nil, nil, file)
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, c.HeartbeatInterval, "file over default")
	require.Equal(t, []string{"A", "B"}, c.Lanes)
	require.Equal(t, "acme/web", c.Integrations.GitHub.Repo)

	c, err = load(t, nil, map[string]string{"OPSD_HEARTBEAT_INTERVAL": "1s", "GITHUB_TOKEN": "from-env-token"}, file)
	require.NoError(t, err)
	require.Equal(t, time.Second, c.HeartbeatInterval, "environment over file")
	require.Equal(t, "from-env-token", c.Integrations.GitHub.Token)

	c, err = load(t, []string{"--heartbeat-interval", "500ms"}, map[string]string{"OPSD_HEARTBEAT_INTERVAL": "1s"}, file)
	require.NoError(t, err)
	require.Equal(t, 500*time.Millisecond, c.HeartbeatInterval, "flag over environment")
	require.Contains(t, c.Secrets(), "from-file-token")
}

func TestBadValuesNameTheOption(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--stale-after", "1s"}, want: "stale_after = 1s: must be at least twice heartbeat_interval"},
		{env: map[string]string{"OPSD_HEARTBEAT_INTERVAL": "soon"}, want: `heartbeat_interval (env OPSD_HEARTBEAT_INTERVAL) = "soon"`},
		{args: []string{"--heartbeat-interval", "12s", "--stale-after", "60s"}, want: "heartbeat_interval = 12s: must be under 10s"},
		{args: []string{"--lanes", " , "}, want: "lanes is empty"},
		{args: []string{"--lanes", "A,blue lane"}, want: `lanes: "blue lane" is not a lane name`},
		{args: []string{"--log-level", "loud"}, want: `log_level = "loud"`},
		{args: []string{"--log-format", "xml"}, want: `log_format = "xml"`},
		{args: []string{"--lane-concurrency", "0"}, want: "lane_concurrency = 0"},
		{args: []string{"--supabase-url", "xyz.supabase.co"}, want: `supabase_url = "xyz.supabase.co"`},
		{args: []string{"--idle-exit", "-1s"}, want: "idle_exit = -1s"},
	} {
		_, err := load(t, tc.args, tc.env, "")
		require.ErrorContains(t, err, tc.want, "args %v env %v", tc.args, tc.env)
	}
	_, err := load(t, nil, nil, "heartbeat_interval: [1, 2]\n")
	require.ErrorContains(t, err, "heartbeat_interval")
	_, err = load(t, nil, nil, "approval_env: prod\n")
	require.ErrorContains(t, err, `unknown option "approval_env"`)
	_, err = load(t, nil, nil, "stale_after: 30\n")
	require.ErrorContains(t, err, "stale_after (env OPSD_STALE_AFTER) = \"30\": a duration needs a unit")
	c, err := load(t, nil, nil, "approval_envs: [prod, staging]\nlanes: [A, B]\n")
	require.NoError(t, err)
	require.Equal(t, []string{"prod", "staging"}, c.ApprovalEnvs)
	require.Equal(t, []string{"A", "B"}, c.Lanes)
}

func TestStoreKind(t *testing.T) {
	c := &config.Config{}
	_, err := c.StoreKind()
	require.ErrorContains(t, err, "set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
	c.SupabaseURL = "https://x.supabase.co"
	_, err = c.StoreKind()
	require.ErrorContains(t, err, "SUPABASE_SERVICE_ROLE_KEY")
	c.SupabaseServiceRoleKey = "k"
	kind, err := c.StoreKind()
	require.NoError(t, err)
	require.Equal(t, "rest", kind)
	c.DatabaseURL = "postgres://u:p@h/db"
	kind, _ = c.StoreKind()
	require.Equal(t, "postgres", kind)
}

// TestREADMEDocumentsEveryOption keeps the README's reference true.
func TestREADMEDocumentsEveryOption(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(b)
	for _, o := range config.Options {
		flag := "--" + strings.ReplaceAll(o.Key, "_", "-")
		require.Contains(t, readme, "`"+flag+"` / `"+o.Key+"` | `"+o.Env+"`", "README.md lacks %s", o.Key)
	}
}
