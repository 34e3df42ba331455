package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shutdownGrace is opsd's default grace period for in-flight phases after
// SIGTERM; systemd must wait longer than that before SIGKILL.
const shutdownGrace = 30 * time.Second

// unit maps section -> key -> values, in file order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, text string) unit {
	t.Helper()
	u := unit{}
	section := ""
	for _, line := range lines(strings.ReplaceAll(text, "\n;", "\n#"), "#") {
		if strings.HasPrefix(line, "[") {
			require.True(t, strings.HasSuffix(line, "]"), "section header %q", line)
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		require.True(t, ok, "line %q is not Key=Value", line)
		require.NotEmpty(t, section, "%q outside a section", line)
		u[section][strings.TrimSpace(key)] = append(u[section][strings.TrimSpace(key)], strings.TrimSpace(value))
	}
	return u
}

// one returns the single value of key in section.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	require.Len(t, v, 1, "[%s] %s", section, key)
	return v[0]
}

// parseTimespan parses the systemd time spans used in the unit ("30s",
// "2min", "1min 30s", "500ms"; a bare number is seconds).
func parseTimespan(t *testing.T, s string) time.Duration {
	t.Helper()
	var total time.Duration
	for _, part := range strings.Fields(s) {
		m := regexp.MustCompile(`^(\d+)(ms|s|sec|m|min|h)?$`).FindStringSubmatch(part)
		require.NotNil(t, m, "time span %q", s)
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		unit := map[string]time.Duration{"": time.Second, "s": time.Second, "sec": time.Second,
			"ms": time.Millisecond, "m": time.Minute, "min": time.Minute, "h": time.Hour}[m[2]]
		total += time.Duration(n) * unit
	}
	return total
}

func TestSystemdUnitDirectives(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, readFile(t, "deploy/systemd/opsd.service"))
	svc := "Service"

	for key, want := range map[string]string{
		"Type":                    "notify",
		"NotifyAccess":            "main",
		"ExecStart":               "/usr/local/bin/opsd run --config /etc/opsd/opsd.yaml",
		"EnvironmentFile":         "/etc/opsd/opsd.env",
		"User":                    "opsd",
		"Group":                   "opsd",
		"Restart":                 "on-failure",
		"KillSignal":              "SIGTERM",
		"StateDirectory":          "opsd",
		"NoNewPrivileges":         "true",
		"ProtectSystem":           "strict",
		"ProtectHome":             "true",
		"PrivateTmp":              "true",
		"PrivateDevices":          "true",
		"ProtectKernelTunables":   "true",
		"ProtectKernelModules":    "true",
		"ProtectKernelLogs":       "true",
		"ProtectControlGroups":    "true",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"LockPersonality":         "true",
		"MemoryDenyWriteExecute":  "true",
		"RestrictSUIDSGID":        "true",
	} {
		assert.Equal(t, want, u.one(t, svc, key), "[Service] %s", key)
	}

	watchdog := parseTimespan(t, u.one(t, svc, "WatchdogSec"))
	assert.Equal(t, 30*time.Second, watchdog)
	assert.Equal(t, 2*time.Second, parseTimespan(t, u.one(t, svc, "RestartSec")))
	stop := parseTimespan(t, u.one(t, svc, "TimeoutStopSec"))
	assert.Greater(t, stop, shutdownGrace, "TimeoutStopSec must outlast the shutdown grace, or SIGKILL cuts off the final events")

	nofile, err := strconv.Atoi(u.one(t, svc, "LimitNOFILE"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, nofile, 4096)

	assert.Contains(t, u[svc]["SystemCallFilter"], "@system-service")
	assert.Equal(t, "multi-user.target", u.one(t, "Install", "WantedBy"))
	assert.Contains(t, u.one(t, "Unit", "After"), "network-online.target")
}

// fakeUnit writes the unit into dir with ExecStart pointing at an existing
// executable: systemd-analyze checks that the command exists.
func fakeUnit(t *testing.T, dir string) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "opsd")
	require.NoError(t, os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755))
	text := strings.ReplaceAll(readFile(t, "deploy/systemd/opsd.service"), "/usr/local/bin/opsd", exe)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, "opsd.service")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

func systemdAnalyze(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

func TestSystemdAnalyzeVerify(t *testing.T) {
	t.Parallel()
	path := fakeUnit(t, t.TempDir())
	out, err := systemdAnalyze(t, "verify", "--man=no", path)
	require.NoError(t, err, out)
	// verify exits 0 on unknown keys and unparsable values, only warning:
	// any output is a defect.
	assert.Empty(t, strings.TrimSpace(out))
}

func TestSystemdAnalyzeSecurity(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	fakeUnit(t, filepath.Join(root, "etc/systemd/system"))
	out, err := systemdAnalyze(t, "security", "--offline=true", "--root="+root, "--man=no", "--no-pager", "opsd.service")
	m := regexp.MustCompile(`Overall exposure level for opsd\.service: (\d+\.\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Skipf("systemd-analyze security --offline unsupported here: %v\n%s", err, out)
	}
	exposure, perr := strconv.ParseFloat(m[1], 64)
	require.NoError(t, perr)
	// 0 is fully locked down, 10 is unprotected; systemd calls < 2 "OK".
	assert.Less(t, exposure, 2.0, out)
}
