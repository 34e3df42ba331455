package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/config"
	"github.com/opscontrolroom/opsd/internal/redact"
)

// nopStore stands for the opened store; only its identity matters here.
type nopStore struct{ executor.Store }

func TestWithArtifactStorage(t *testing.T) {
	var store executor.Store = nopStore{}
	e := &env{cfg: &config.Config{SupabaseURL: "https://x.supabase.co", SupabaseServiceRoleKey: "k"}, log: zap.NewNop(), redactor: redact.New()}

	got, err := withArtifactStorage(e, store)
	require.NoError(t, err)
	require.Equal(t, store, got, "no bucket: the store as it is")
	_, ok := got.(executor.LargeArtifactStore)
	require.False(t, ok)

	e.cfg.ArtifactStorageBucket = "artifacts"
	got, err = withArtifactStorage(e, store)
	require.NoError(t, err)
	_, ok = got.(executor.LargeArtifactStore)
	require.True(t, ok, "a bucket: large artifacts go to Storage")

	e.cfg.ArtifactStorageBucket = "a/b"
	_, err = withArtifactStorage(e, store)
	require.ErrorContains(t, err, `artifact_storage_bucket = "a/b"`)
}
