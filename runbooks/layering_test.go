package runbooks

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDomainDoesNotDependOnTheCLI: the executor, the runbooks and the
// adapters get their options as their own types; the CLI's configuration
// (viper, flags) stays in internal/config and internal/cli.
func TestDomainDoesNotDependOnTheCLI(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-deps", "./executor/...", "./runbooks/...", "./adapters/...")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"/internal/config", "/internal/cli", "github.com/spf13/viper", "github.com/spf13/cobra"} {
			require.False(t, strings.HasSuffix(pkg, banned) || pkg == banned, "the domain depends on %s", pkg)
		}
	}
}
