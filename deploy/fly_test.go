package deploy_test

import (
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type flyConfig struct {
	App         string `toml:"app"`
	KillSignal  string `toml:"kill_signal"`
	KillTimeout int    `toml:"kill_timeout"`
	Build       struct {
		Dockerfile string `toml:"dockerfile"`
	} `toml:"build"`
	Processes   map[string]string `toml:"processes"`
	HTTPService struct {
		InternalPort       int      `toml:"internal_port"`
		ForceHTTPS         bool     `toml:"force_https"`
		AutoStopMachines   string   `toml:"auto_stop_machines"`
		AutoStartMachines  bool     `toml:"auto_start_machines"`
		MinMachinesRunning *int     `toml:"min_machines_running"`
		Processes          []string `toml:"processes"`
		Checks             []struct {
			Method string `toml:"method"`
			Path   string `toml:"path"`
		} `toml:"checks"`
	} `toml:"http_service"`
}

func TestFlyConfig(t *testing.T) {
	t.Parallel()
	var cfg flyConfig
	require.NoError(t, toml.Unmarshal([]byte(readFile(t, "deploy/fly/fly.toml")), &cfg))

	assert.NotEmpty(t, cfg.App)
	assert.Equal(t, "SIGTERM", cfg.KillSignal)
	assert.Equal(t, 45, cfg.KillTimeout)
	assert.Greater(t, cfg.KillTimeout, int(shutdownGrace.Seconds()), "Fly must wait out the shutdown grace before SIGKILL")
	assert.LessOrEqual(t, cfg.KillTimeout, 300, "Fly's maximum")
	assert.Equal(t, "../Dockerfile", cfg.Build.Dockerfile, "relative to fly.toml")

	// The command is appended to ENTRYPOINT ["/opsd"].
	assert.Equal(t, map[string]string{"app": "run --http-addr :8080 --idle-exit 5m"}, cfg.Processes)

	s := cfg.HTTPService
	assert.Equal(t, 8080, s.InternalPort)
	assert.True(t, s.ForceHTTPS)
	// opsd stops itself when idle (--idle-exit); the proxy, which cannot see
	// running runs, must not stop it mid-run.
	assert.Equal(t, "off", s.AutoStopMachines)
	assert.True(t, s.AutoStartMachines)
	require.NotNil(t, s.MinMachinesRunning)
	assert.Equal(t, 0, *s.MinMachinesRunning)
	assert.Equal(t, []string{"app"}, s.Processes)
	require.Len(t, s.Checks, 1)
	assert.Equal(t, "GET", s.Checks[0].Method)
	assert.Equal(t, "/healthz", s.Checks[0].Path)
}
