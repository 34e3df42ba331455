package deploy_test

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// repoRoot returns the repository root, the parent of this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Dir(filepath.Dir(file))
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	require.NoError(t, err)
	return string(b)
}

// lines returns the non-empty lines of s that are not comments, trimmed,
// with backslash continuations joined.
func lines(s string, comment string) []string {
	var out []string
	var cont strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cont.Len() == 0 && (line == "" || strings.HasPrefix(line, comment)) {
			continue
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cont.WriteString(body)
			cont.WriteByte(' ')
			continue
		}
		cont.WriteString(line)
		out = append(out, cont.String())
		cont.Reset()
	}
	return out
}
