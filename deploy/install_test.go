package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// installHarness runs install.sh twice (install, then upgrade) inside a
// private mount namespace in which /etc is a throwaway copy, with a stub
// systemctl, and prints what the test checks. set -e stops it before
// install.sh if the namespace or the bind mount cannot be had, so the
// machine's real /etc is never touched.
const installHarness = `
set -euo pipefail
work="$1"
mount --make-rprivate /
cp -a /etc "$work/etc"
mount --bind "$work/etc" /etc
export PATH="$work/stub:$PATH" OPSD_PREFIX="$work/bin"
echo "== install"
"$INSTALL" "$work/opsd"
echo "SOMETHING=kept" >>/etc/opsd/opsd.env
chmod 0644 /etc/opsd/opsd.env
touch "$work/active"
echo "== upgrade"
"$INSTALL" "$work/opsd"
echo "== result"
getent passwd opsd
stat -c '%a %U:%G %n' /etc/opsd /etc/opsd/opsd.env /etc/opsd/opsd.yaml /etc/systemd/system/opsd.service "$work/bin/opsd"
grep -c SOMETHING=kept /etc/opsd/opsd.env
cmp /etc/systemd/system/opsd.service "$UNIT"
`

const systemctlStub = `#!/bin/sh
echo "systemctl $*" >>"$(dirname "$0")/../systemctl.log"
if [ "$1" = is-active ]; then
	[ -e "$(dirname "$0")/../active" ] && exit 0
	exit 3
fi
exit 0
`

func TestInstallScript(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: install.sh creates a user and writes /etc")
	}
	for _, tool := range []string{"unshare", "useradd", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	hostPaths := []string{"/etc/opsd", "/etc/systemd/system/opsd.service"}
	hostBefore := existing(hostPaths)
	work := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(work, "stub"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(work, "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(work, "stub", "systemctl"), []byte(systemctlStub), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(work, "opsd"), []byte("#!/bin/sh\n"), 0o755))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	root := repoRoot(t)
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "bash", "-c", installHarness, "harness", work)
	cmd.Env = append(os.Environ(),
		"INSTALL="+filepath.Join(root, "deploy/systemd/install.sh"),
		"UNIT="+filepath.Join(root, "deploy/systemd/opsd.service"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if !strings.Contains(out.String(), "== install") {
			t.Skipf("no private mount namespace here: %v\n%s", err, out.String())
		}
		t.Fatalf("install.sh failed: %v\n%s", err, out.String())
	}
	result := out.String()[strings.Index(out.String(), "== result"):]

	assert.Contains(t, result, "opsd:x:")
	assert.Contains(t, result, ":/var/lib/opsd:/usr/sbin/nologin")
	for _, want := range []string{
		"750 root:opsd /etc/opsd\n",
		"600 root:root /etc/opsd/opsd.env\n", // restored after the chmod 0644
		"640 root:opsd /etc/opsd/opsd.yaml\n",
		"644 root:root /etc/systemd/system/opsd.service\n",
		"755 root:root " + filepath.Join(work, "bin/opsd") + "\n",
	} {
		assert.Contains(t, result, want)
	}
	assert.Contains(t, result, "\n1\n", "the existing env file is kept on upgrade")
	assert.Contains(t, out.String(), "wrote /etc/opsd/opsd.env from the example")
	assert.Equal(t, 1, strings.Count(out.String(), "wrote /etc/opsd/opsd.env"), "written once only")

	log, err := os.ReadFile(filepath.Join(work, "systemctl.log"))
	require.NoError(t, err)
	assert.Equal(t, []string{
		"systemctl daemon-reload",
		"systemctl is-active --quiet opsd.service",
		"systemctl enable --now opsd.service",
		"systemctl --no-pager --lines=0 status opsd.service",
		"systemctl daemon-reload",
		"systemctl is-active --quiet opsd.service",
		"systemctl enable opsd.service",
		"systemctl restart opsd.service",
		"systemctl --no-pager --lines=0 status opsd.service",
	}, strings.Split(strings.TrimSpace(string(log)), "\n"))
	assert.Equal(t, hostBefore, existing(hostPaths), "the machine's own /etc is untouched")
}

// existing returns which of paths exist.
func existing(paths []string) map[string]bool {
	m := map[string]bool{}
	for _, p := range paths {
		_, err := os.Stat(p)
		m[p] = err == nil
	}
	return m
}
