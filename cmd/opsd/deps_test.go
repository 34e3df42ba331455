package main

import (
	"os/exec"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testMachinery says why pkg, a dependency of the opsd binary, is test
// machinery that must not be in it, or "" when it is not.
func testMachinery(pkg string) string {
	const module = "github.com/opscontrolroom/opsd/"
	switch {
	case pkg == "testing" || strings.HasPrefix(pkg, "testing/"):
		return "the testing package"
	case pkg == "net/http/httptest":
		return "a test HTTP server"
	case strings.HasPrefix(pkg, "github.com/golang-jwt/"):
		return "JWT minting (only test servers mint keys)"
	case !strings.HasPrefix(pkg, module):
		return ""
	case strings.HasSuffix(pkg, "test"), path.Base(pkg) == "fake", strings.Contains(pkg, "/fake/"):
		return "a test server, fake or test helper"
	case strings.HasSuffix(pkg, "/benchserver"):
		return "the bench's test server (cmd/opsbench only)"
	}
	return ""
}

// TestNoTestMachineryInTheBinary: the production binary links no test
// server, fake, test helper or JWT minting; those live in tests and in
// cmd/opsbench.
func TestNoTestMachineryInTheBinary(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, string(out))
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/opscontrolroom/opsd/internal/cli", "the list is the binary's")
	for _, pkg := range deps {
		assert.Empty(t, testMachinery(pkg), "cmd/opsd depends on %s", pkg)
	}
}

// TestTestMachineryIsRecognised: the rule above catches what it is for.
func TestTestMachineryIsRecognised(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{"testing", "net/http/httptest", "github.com/golang-jwt/jwt/v5",
		"github.com/opscontrolroom/opsd/internal/postgresttest", "github.com/opscontrolroom/opsd/internal/pgtest",
		"github.com/opscontrolroom/opsd/adapters/github/githubtest", "github.com/opscontrolroom/opsd/adapters/internal/fake",
		"github.com/opscontrolroom/opsd/supabase/storetest", "github.com/opscontrolroom/opsd/internal/bench/benchserver"} {
		assert.NotEmpty(t, testMachinery(pkg), pkg)
	}
	for _, pkg := range []string{"net/http", "github.com/opscontrolroom/opsd/internal/bench",
		"github.com/opscontrolroom/opsd/internal/pgcluster", "github.com/opscontrolroom/opsd/adapters/github"} {
		assert.Empty(t, testMachinery(pkg), pkg)
	}
}
