package verceltest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// call sends a raw request the way the Vercel docs show and decodes the JSON reply.
func call(t *testing.T, s *Server, ctx context.Context, method, pathAndQuery, body string) (int, http.Header, any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+pathAndQuery, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var v any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return resp.StatusCode, resp.Header, v
}

func TestErrorShapeAndHeaders(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.Fail(Failure{Status: 429, RetryAfter: "7"})
	status, h, v := call(t, s, context.Background(), "GET", "/v9/projects/x", "")
	assert.Equal(t, 429, status)
	assert.Equal(t, "7", h.Get("Retry-After"))
	assert.Equal(t, "0", h.Get("X-RateLimit-Remaining"))
	assert.NotEmpty(t, h.Get("X-RateLimit-Reset"))
	assert.Equal(t, map[string]any{"error": map[string]any{"code": "rate_limited", "message": "Too Many Requests"}}, v)

	status, _, v = call(t, s, context.Background(), "GET", "/v9/projects/x", "")
	assert.Equal(t, 404, status)
	assert.Equal(t, "not_found", v.(map[string]any)["error"].(map[string]any)["code"])

	status, _, _ = call(t, s, context.Background(), "GET", "/v1/unknown", "")
	assert.Equal(t, 404, status)
}

func TestCreateProgressesOverGets(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithTeam("team_1"))
	s.AddProject(Project{Name: "web", Org: "acme", Repo: "web"})
	ctx := context.Background()
	status, _, v := call(t, s, ctx, "POST", "/v13/deployments?teamId=team_1",
		`{"name":"web","target":"production","gitSource":{"type":"github","org":"acme","repo":"web","ref":"main"}}`)
	require.Equal(t, 200, status, v)
	d := v.(map[string]any)
	assert.Equal(t, "QUEUED", d["readyState"])
	assert.Equal(t, "production", d["target"])
	id := d["id"].(string)
	assert.True(t, strings.HasPrefix(id, "dpl_"))

	var states []any
	for range 4 {
		_, _, v = call(t, s, ctx, "GET", "/v13/deployments/"+id+"?teamId=team_1", "")
		states = append(states, v.(map[string]any)["readyState"])
	}
	assert.Equal(t, []any{"BUILDING", "READY", "READY", "READY"}, states)

	_, _, v = call(t, s, ctx, "GET", "/v3/deployments/"+id+"/events?teamId=team_1&follow=0&limit=-1", "")
	events := v.([]any)
	require.NotEmpty(t, events)
	first := events[0].(map[string]any)
	assert.Equal(t, "stdout", first["type"])
	assert.Contains(t, first["payload"].(map[string]any)["text"], "Cloning github.com/acme/web")
}

func TestListPaginationShape(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	p := s.AddProject(Project{Name: "web"})
	for range 3 {
		s.AddDeployment(Deployment{Name: "web", ProjectID: p.ID})
	}
	_, _, v := call(t, s, context.Background(), "GET", "/v6/deployments?projectId=web&limit=2", "")
	page := v.(map[string]any)
	pg := page["pagination"].(map[string]any)
	assert.EqualValues(t, 2, pg["count"])
	require.NotNil(t, pg["next"])
	next := int64(pg["next"].(float64))

	_, _, v = call(t, s, context.Background(), "GET", "/v6/deployments?projectId=web&limit=2&until="+jsonNumber(next), "")
	page = v.(map[string]any)
	assert.Len(t, page["deployments"], 1)
	assert.Nil(t, page["pagination"].(map[string]any)["next"])
	item := page["deployments"].([]any)[0].(map[string]any)
	for _, k := range []string{"uid", "url", "created", "state", "readyState", "inspectorUrl"} {
		assert.Contains(t, item, k)
	}
}

func TestLatencyIsCutShortByClient(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.URL+"/v9/projects/x", nil)
	require.NoError(t, err)
	_, err = s.Client().Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
