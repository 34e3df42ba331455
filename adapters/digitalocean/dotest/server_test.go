package dotest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func get(t *testing.T, s *Server, path string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), "GET", s.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var v map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return resp.StatusCode, resp.Header, v
}

func TestListShape(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	for range 5 {
		s.AddDroplet(Droplet{Name: "web", PublicIPv4: "203.0.113.7", Tags: []string{"web"}})
	}
	status, h, v := get(t, s, "/v2/droplets?tag_name=web&page=2&per_page=2")
	require.Equal(t, 200, status)
	assert.NotEmpty(t, h.Get("RateLimit-Limit"))
	assert.NotEmpty(t, h.Get("RateLimit-Remaining"))
	assert.NotEmpty(t, h.Get("RateLimit-Reset"))
	assert.Len(t, v["droplets"], 2)
	assert.Equal(t, map[string]any{"total": float64(5)}, v["meta"])
	pages := v["links"].(map[string]any)["pages"].(map[string]any)
	assert.Contains(t, pages["next"], "page=3")
	assert.Contains(t, pages["next"], "tag_name=web")
	assert.Contains(t, pages["prev"], "page=1")
	assert.Contains(t, pages["last"], "page=3")
	d := v["droplets"].([]any)[0].(map[string]any)
	v4 := d["networks"].(map[string]any)["v4"].([]any)[0].(map[string]any)
	assert.Equal(t, map[string]any{"ip_address": "203.0.113.7", "netmask": "255.255.240.0", "gateway": "203.0.113.1", "type": "public"}, v4)

	_, _, v = get(t, s, "/v2/droplets?tag_name=web&page=3&per_page=2")
	_, hasNext := v["links"].(map[string]any)["pages"].(map[string]any)["next"]
	assert.False(t, hasNext)
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	status, _, v := get(t, s, "/v2/droplets/42")
	assert.Equal(t, 404, status)
	assert.Equal(t, "not_found", v["id"])
	assert.NotEmpty(t, v["message"])

	status, _, v = get(t, s, "/v2/droplets?name=a&tag_name=b")
	assert.Equal(t, 400, status)
	assert.Equal(t, "bad_request", v["id"])

	s.Fail(Failure{Status: 429, RetryAfter: "3"})
	status, h, v := get(t, s, "/v2/droplets")
	assert.Equal(t, 429, status)
	assert.Equal(t, "too_many_requests", v["id"])
	assert.Equal(t, "3", h.Get("Retry-After"))
	assert.Equal(t, "0", h.Get("RateLimit-Remaining"))

	req, err := http.NewRequestWithContext(context.Background(), "GET", s.URL+"/v2/droplets", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, 401, resp.StatusCode)
	assert.Equal(t, map[string]any{"id": "unauthorized", "message": "Unable to authenticate you."}, body)
}
