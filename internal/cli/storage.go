package cli

import (
	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/supabase/storage"
)

// withArtifactStorage sends artifacts over the row cap to Supabase Storage
// when artifact_storage_bucket is set; otherwise they are truncated.
func withArtifactStorage(e *env, store executor.Store) (executor.Store, error) {
	c := e.cfg
	if c.ArtifactStorageBucket == "" {
		return store, nil
	}
	big, err := storage.New(c.SupabaseURL, c.SupabaseServiceRoleKey, c.ArtifactStorageBucket, c.ArtifactLinkTTL, nil)
	if err != nil {
		return nil, &ExitError{Code: 2, Err: err}
	}
	return executor.WithLargeArtifacts(store, big), nil
}
