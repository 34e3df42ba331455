package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDockerfile(t *testing.T) {
	t.Parallel()
	var stages [][]string // instructions per stage, FROM first
	for _, line := range lines(readFile(t, "deploy/Dockerfile"), "#") {
		if strings.HasPrefix(line, "FROM ") {
			stages = append(stages, nil)
		}
		require.NotEmpty(t, stages, "instruction before FROM: %q", line)
		stages[len(stages)-1] = append(stages[len(stages)-1], line)
	}
	require.Len(t, stages, 2, "a build stage and a runtime stage")

	build, final := strings.Join(stages[0], "\n"), stages[1]
	assert.Equal(t, "FROM golang:1.26 AS build", stages[0][0])
	assert.Contains(t, build, "CGO_ENABLED=0 go build -trimpath")
	assert.Contains(t, build, `-X github.com/opscontrolroom/opsd/internal/cli.Version=${VERSION}`)
	assert.Contains(t, build, "./cmd/opsd")

	assert.Equal(t, []string{
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"COPY --from=build /out/opsd /opsd",
		"USER nonroot:nonroot",
		"EXPOSE 8080",
		`ENTRYPOINT ["/opsd"]`,
		`CMD ["run"]`,
	}, final, "the runtime image has no shell: nothing may RUN in it")
}

func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	t.Parallel()
	patterns := lines(readFile(t, ".dockerignore"), "#")
	assert.Contains(t, patterns, ".git")
	// Everything `go build ./cmd/opsd` reads must stay in the context.
	for _, keep := range []string{"go.mod", "go.sum", "cmd/opsd/main.go", "internal/redact/redact.go",
		"deploy/sdnotify.go", "supabase/migrations/0001_init.sql", "supabase/migrations/bootstrap/bootstrap.sql",
		"executor/store.go"} {
		for _, p := range patterns {
			p = strings.TrimPrefix(p, "/")
			ok, err := filepath.Match(p, keep)
			require.NoError(t, err)
			prefix := strings.HasPrefix(keep, strings.TrimSuffix(p, "/")+"/")
			assert.False(t, ok || prefix, ".dockerignore pattern %q drops %s", p, keep)
		}
	}
	_, err := os.Stat(filepath.Join(repoRoot(t), "cmd", "opsd"))
	assert.NoError(t, err, "the Dockerfile builds ./cmd/opsd")
}
