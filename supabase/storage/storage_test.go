package storage

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/opscontrolroom/opsd/executor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const key = "service-role-secret"

// fakeStorage answers the two Storage endpoints as Supabase documents them:
// POST /storage/v1/object/{bucket}/{path} -> {"Key": "bucket/path"} and
// POST /storage/v1/object/sign/{bucket}/{path} -> {"signedURL": "/object/sign/...?token=..."}.
type fakeStorage struct {
	mu      sync.Mutex
	objects map[string]string
	expires int64
}

func (f *fakeStorage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+key || r.Header.Get("apikey") != key {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"statusCode":"403","error":"Unauthorized","message":"invalid signature"}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if obj, ok := strings.CutPrefix(r.URL.Path, "/storage/v1/object/sign/"); ok {
		if _, exists := f.objects[obj]; !exists {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"statusCode":"404","error":"not_found","message":"Object not found"}`)
			return
		}
		var in struct{ ExpiresIn int64 }
		_ = json.Unmarshal(body, &in)
		f.expires = in.ExpiresIn
		_, _ = io.WriteString(w, `{"signedURL":"/object/sign/`+obj+`?token=signed"}`)
		return
	}
	obj, ok := strings.CutPrefix(r.URL.Path, "/storage/v1/object/")
	if !ok || !strings.HasPrefix(obj, "artifacts/") {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"statusCode":"404","error":"Bucket not found","message":"Bucket not found"}`)
		return
	}
	f.objects[obj] = string(body)
	_, _ = io.WriteString(w, `{"Key":"`+obj+`"}`)
}

func TestPutLargeArtifact(t *testing.T) {
	t.Parallel()
	f := &fakeStorage{objects: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/", key, "artifacts", time.Hour, srv.Client())
	require.NoError(t, err)

	link, err := c.PutLargeArtifact(context.Background(), executor.Artifact{RunID: "run-1", Title: "Vercel build log (last 200 lines)", Value: "big content"})
	require.NoError(t, err)
	require.Len(t, f.objects, 1)
	for obj, v := range f.objects {
		assert.Equal(t, "big content", v)
		assert.True(t, strings.HasPrefix(obj, "artifacts/runs/run-1/"), obj)
		assert.True(t, strings.HasSuffix(obj, "-Vercel-build-log--last-200-lines-.txt"), obj)
		assert.Equal(t, srv.URL+"/storage/v1/object/sign/"+obj+"?token=signed", link)
	}
	assert.Equal(t, int64(3600), f.expires)
	assert.NotContains(t, link, key)
}

func TestPutLargeArtifactErrors(t *testing.T) {
	t.Parallel()
	f := &fakeStorage{objects: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, key, "missing", 0, srv.Client())
	require.NoError(t, err)
	_, err = c.PutLargeArtifact(context.Background(), executor.Artifact{RunID: "r", Title: "t", Value: "v"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Bucket not found")
	assert.Contains(t, err.Error(), "missing/runs/r/")
	assert.NotContains(t, err.Error(), key)

	srv.Close() // unreachable: the error has no URL and no key
	_, err = c.PutLargeArtifact(context.Background(), executor.Artifact{RunID: "r", Title: "t", Value: "v"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), key)
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, key, bucket, want string }{
		{"ftp://x", key, "b", "supabase_url"},
		{"https://x.supabase.co", "", "b", "supabase_service_role_key"},
		{"https://x.supabase.co", key, "a/b", `artifact_storage_bucket = "a/b"`},
		{"https://x.supabase.co", key, "", "artifact_storage_bucket"},
	} {
		_, err := New(tc.url, tc.key, tc.bucket, 0, nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), key)
	}
}
